//! Nothing acknowledged is lost. A client logs metric batches while Postgres is crashed
//! (`pg_ctl -m immediate`, twice) and the server process is SIGKILLed (once), resending every batch
//! that got no answer; afterwards every acknowledged point is there, value and timestamp.
//!
//! The crash test runs a Postgres cluster of its own (initdb in a temporary folder, as the
//! `postgres` user when we are root, on a free port) so that it can crash it, and the server as a
//! process of its own (`crucible-test-server`). Without the Postgres server binaries it skips,
//! unless `CRUCIBLE_REQUIRE_PG_CRASH=1` (which `scripts/test.sh` sets when they exist): then it fails.

mod common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Batches the client logs, and points per batch (the drill that found the loss: 200 × 100).
const BATCHES: usize = 200;
const POINTS: usize = 100;
const KEY: &str = "train/loss";

/// The value logged at `step` (distinct per step, exact in JSON and float8).
fn value(step: usize) -> f64 {
    step as f64 * 0.25 - 7.0
}

/// The wall time logged at `step`, in milliseconds.
fn timestamp_ms(step: usize) -> i64 {
    1_700_000_000_000 + step as i64
}

/// The body of batch `b`: the same bytes every time it is sent.
fn batch(b: usize) -> Value {
    let points: Vec<Value> = (b * POINTS..(b + 1) * POINTS)
        .map(|step| {
            json!({ "key": KEY, "step": step, "value": value(step), "timestamp_ms": timestamp_ms(step) })
        })
        .collect();
    json!({ "points": points })
}

/// A Postgres server binary: on `PATH`, else the newest of Debian's versioned folders.
fn pg_bin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin").join(name))
            .filter(|p| p.is_file())
            .collect();
        versions.sort_by_key(|p| {
            p.iter()
                .nth(4)
                .and_then(|v| v.to_str()?.parse::<u32>().ok())
        });
        versions.pop()
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `cmd` and panics with its output when it fails.
fn check(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Postgres cluster of this test's own, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    port: u16,
    /// initdb refuses root: as root, every Postgres command runs as the `postgres` user.
    as_postgres: bool,
}

impl Cluster {
    /// Creates and starts a cluster; `None` (with the reason) when this machine cannot.
    fn create() -> Result<Cluster, String> {
        let initdb = pg_bin("initdb").ok_or("no initdb")?;
        let pg_ctl = pg_bin("pg_ctl").ok_or("no pg_ctl")?;
        let as_postgres = is_root();
        if as_postgres && pg_bin("runuser").is_none() && !Path::new("/sbin/runuser").exists() {
            return Err("running as root without runuser".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("crucible-crash-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let cluster = Cluster {
            dir,
            pg_ctl,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            check(
                Command::new("chown")
                    .arg("postgres")
                    .arg(cluster.dir.path()),
                "chown postgres",
            );
        }
        check(
            cluster
                .command(&initdb)
                .arg("-D")
                .arg(cluster.data())
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]),
            "initdb",
        );
        cluster.start();
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self) -> Command {
        let mut c = self.command(&self.pg_ctl);
        c.arg("-D").arg(self.data());
        c
    }

    /// Starts Postgres (crash recovery replays the WAL) and waits until it accepts connections.
    /// `fsync` stays on, as in production.
    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        check(
            self.pg_ctl()
                .arg("-l")
                .arg(self.dir.path().join("pg.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
            "pg_ctl start",
        );
    }

    /// Kills Postgres without a shutdown checkpoint: what a power cut leaves of the server
    /// processes (everything not yet written out of Postgres' own memory is gone).
    fn crash(&self) {
        check(
            self.pg_ctl().args(["-m", "immediate", "stop"]),
            "pg_ctl -m immediate stop",
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts the server over `database_url` on `addr` and waits until it listens.
    fn start(database_url: &str, addr: &str) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_crucible-test-server"))
            .args([database_url, addr])
            .stdout(Stdio::null())
            .spawn()
            .expect("start crucible-test-server");
        let mut server = Server {
            child,
            addr: addr.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&server.addr).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// SIGKILL: no graceful shutdown, in-flight requests die with it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster for the crash test, or `None` when this machine has none and none is required.
fn cluster_or_skip() -> Option<Cluster> {
    match Cluster::create() {
        Ok(c) => Some(c),
        Err(why) if std::env::var("CRUCIBLE_REQUIRE_PG_CRASH").as_deref() == Ok("1") => {
            panic!("CRUCIBLE_REQUIRE_PG_CRASH=1 but no Postgres cluster can be started: {why}")
        }
        Err(why) => {
            eprintln!(
                "*** SKIPPED: no Postgres server binaries to crash ({why}); install postgresql ***"
            );
            None
        }
    }
}

/// POSTs `body` as JSON and returns the status and the JSON reply (`None`: no answer).
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Option<(StatusCode, Value)> {
    let res = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let status = StatusCode::from_u16(res.status().as_u16()).ok()?;
    // A reply cut off mid-body (the server killed) is no acknowledgement either.
    let value = res.json::<Value>().await.ok()?;
    Some((status, value))
}

/// Sends batch `b` until it is acknowledged, the way a client must: any answer other than a 200
/// (no answer, a cut-off reply, a 5xx while Postgres is down) means "not stored, maybe stored";
/// the identical batch is sent again, which the endpoint makes harmless. Returns the resends.
async fn log_until_acknowledged(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    b: usize,
) -> usize {
    let body = batch(b);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut resends = 0;
    loop {
        match post(client, url, token, &body).await {
            Some((StatusCode::OK, reply)) => {
                assert_eq!(reply["accepted"], POINTS, "batch {b}: {reply}");
                return resends;
            }
            Some((status, reply)) if status.is_client_error() => {
                panic!("batch {b} refused with {status}: {reply}")
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "batch {b} never acknowledged");
        resends += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Blocks until `n` batches are acknowledged.
fn wait_for(acked: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "stuck before {n} acknowledged batches"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_points_survive_postgres_and_server_crashes() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Server::start(&cluster.url(), &addr);
    let token = {
        let pool = PgPool::connect(&cluster.url()).await.expect("connect");
        let t = common::token(&pool, "crash").await;
        pool.close().await;
        t
    };
    let base = format!("http://{addr}/api/v1");
    let client = reqwest::Client::new();
    let (_, project) = post(
        &client,
        &format!("{base}/projects"),
        &token,
        &json!({ "name": "p" }),
    )
    .await
    .expect("project");
    let (status, run) = post(
        &client,
        &format!("{base}/runs"),
        &token,
        &json!({ "project_id": project["id"], "kind": "rl" }),
    )
    .await
    .expect("run");
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let metrics = format!("{base}/runs/{}/metrics", run["id"].as_str().unwrap());

    // Crashes while the client writes: they hit whatever request is in flight.
    let acked = Arc::new(AtomicUsize::new(0));
    let chaos = {
        let acked = acked.clone();
        let url = cluster.url();
        tokio::task::spawn_blocking(move || {
            let mut server = server;
            wait_for(&acked, 40);
            cluster.crash();
            std::thread::sleep(Duration::from_millis(300));
            cluster.start();
            wait_for(&acked, 90);
            server.kill();
            std::thread::sleep(Duration::from_millis(300));
            let server = Server::start(&url, &addr);
            wait_for(&acked, 140);
            cluster.crash();
            std::thread::sleep(Duration::from_millis(300));
            cluster.start();
            (cluster, server)
        })
    };
    let mut resends = 0;
    for b in 0..BATCHES {
        resends += log_until_acknowledged(&client, &metrics, &token, b).await;
        acked.fetch_add(1, Ordering::SeqCst);
    }
    let (cluster, mut server) = chaos.await.expect("the crashes ran");
    eprintln!("{BATCHES} batches acknowledged after {resends} resends");
    assert!(
        resends > 0,
        "no request was hit by a crash: the test proved nothing"
    );

    // A last crash of both right after the last acknowledgement, then read everything back.
    cluster.crash();
    server.kill();
    cluster.start();
    let server = Server::start(&cluster.url(), &server.addr);
    let history: Value = client
        .get(format!("{metrics}/history?key={KEY}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("history JSON");
    let steps: Vec<usize> = history["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s.as_u64().unwrap() as usize)
        .collect();
    let missing: Vec<usize> = (0..BATCHES * POINTS)
        .filter(|s| steps.binary_search(s).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged points lost, e.g. steps {:?}",
        missing.len(),
        BATCHES * POINTS,
        &missing[..missing.len().min(10)]
    );
    assert_eq!(steps.len(), BATCHES * POINTS, "no point twice");
    for (i, &step) in steps.iter().enumerate() {
        assert_eq!(
            history["values"][i].as_f64(),
            Some(value(step)),
            "step {step}"
        );
        assert_eq!(
            history["timestamps_ms"][i].as_i64(),
            Some(timestamp_ms(step)),
            "step {step}"
        );
    }
    drop(server);
}

/// The retry the crash test relies on: a batch sent again (same run, key, step, value and
/// timestamp) — because its first answer was lost — leaves the metric exactly as one send does.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_resent_batch_changes_nothing(pool: PgPool) {
    let api = common::Api::new(pool.clone());
    let t = common::token(&pool, "alpha").await;
    api.read_as(&t).await;
    let project = api.project(&t, "p").await;
    let run = api.run(&t, &project, json!({ "kind": "rl" })).await;
    let run = run["id"].as_str().unwrap();
    let url = format!("/api/v1/runs/{run}/metrics");
    let read = || async {
        let (s, h) = api.get(&format!("{url}/history?key={KEY}")).await;
        assert_eq!(s, StatusCode::OK, "{h}");
        let (s, summary) = api.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{summary}");
        (h, summary)
    };
    for b in [0, 1] {
        let (s, r) = api.post(&url, &t, batch(b)).await;
        assert_eq!(
            (s, r["accepted"].as_u64()),
            (StatusCode::OK, Some(POINTS as u64))
        );
    }
    let once = read().await;
    for _ in 0..3 {
        let (s, r) = api.post(&url, &t, batch(1)).await;
        assert_eq!(
            (s, r["accepted"].as_u64()),
            (StatusCode::OK, Some(POINTS as u64))
        );
    }
    assert_eq!(
        read().await,
        once,
        "resending the last batch changed the metric"
    );
    assert_eq!(once.1[0]["count"], 2 * POINTS);
}
