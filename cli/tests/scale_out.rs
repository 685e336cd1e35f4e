//! Beyond one machine: two `crucible serve` replicas over one Postgres database and four
//! `crucible worker` processes, two on each replica — the deployment the README's "Deploying"
//! section describes, with the load balancer left out so that each replica is reached directly.
//! Jobs submitted through both replicas are each leased once, a live event written through one
//! replica reaches a subscriber of the other, and a replica SIGKILLed mid-run loses nothing it
//! acknowledged while its jobs finish on the other's workers.

mod common;

use serde_json::{Value, json};
use sqlx::PgPool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lease length of both replicas: short, so the jobs of a dead replica's workers return quickly.
const LEASE_SECONDS: &str = "3";
const SMALL_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/crucible-mimo-small");

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `crucible serve` replica.
struct Replica {
    process: Process,
    base: String,
}

/// The URL of the test's own database (`#[sqlx::test]` made it) on the server of `DATABASE_URL`.
fn database_url(pool: &PgPool) -> String {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for sqlx tests");
    let (server, _) = server.rsplit_once('/').unwrap();
    let db = pool.connect_options().get_database().unwrap().to_string();
    format!("{server}/{db}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_replica(database: &str) -> Replica {
    let bind = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_crucible"))
        .args(["serve", "--bind", &bind, "--database-url", database])
        .env("CRUCIBLE_LEASE_SECONDS", LEASE_SECONDS)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot start `crucible serve`");
    let replica = Replica {
        process: Process(child),
        base: format!("http://{bind}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{}/api/v1/health", replica.base))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "replica {bind} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replica
}

/// A `crucible worker` leasing from `replica`.
fn start_worker(replica: &Replica, token: &str, name: &str) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_crucible"))
        .args(["worker", "--server", &replica.base, "--token", token])
        .args(["--poll-seconds", "0.2", "--name", name])
        .env("RUST_LOG", "warn")
        .env_remove("CRUCIBLE_DATA_DIR")
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot start `crucible worker`");
    Process(child)
}

struct Client {
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn post(&self, replica: &Replica, path: &str, body: Value) -> Value {
        let url = format!("{}/api/v1{path}", replica.base);
        common::post_json(&self.http, &url, &self.token, &body).await
    }

    async fn get(&self, replica: &Replica, path: &str) -> Value {
        let url = format!("{}/api/v1{path}", replica.base);
        common::get_json(&self.http, &url, &self.token).await
    }

    /// Submits a short generate job through `replica`; returns its id.
    async fn submit(&self, replica: &Replica, model: &str, i: usize) -> String {
        let spec = json!({ "kind": "generate", "model_id": model, "prompts": [format!("What is {i} + {i}?")],
            "sampling": { "max_new_tokens": 8, "temperature": 0.0 } });
        let job = self.post(replica, "/jobs", json!({ "spec": spec })).await;
        job["id"].as_str().unwrap().to_string()
    }

    /// Waits until every job has ended; returns them as `replica` reads them.
    async fn wait_all(&self, replica: &Replica, ids: &[String]) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let mut jobs = Vec::new();
            for id in ids {
                jobs.push(self.get(replica, &format!("/jobs/{id}")).await);
            }
            if jobs.iter().all(|j| {
                ["succeeded", "failed", "cancelled"].contains(&j["status"].as_str().unwrap_or(""))
            }) {
                return jobs;
            }
            assert!(Instant::now() < deadline, "jobs did not end: {jobs:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn two_replicas_four_workers_one_database(pool: PgPool) {
    let database = database_url(&pool);
    let a = start_replica(&database).await;
    let b = start_replica(&database).await;
    let mut tx = pool.begin().await.unwrap();
    let team = crucible_server::store::teams::ensure_team(&mut tx, "scale")
        .await
        .unwrap();
    let token = crucible_server::store::teams::create_token(&mut tx, team, "scale")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        token: token.clone(),
    };
    let model = client
        .post(
            &a,
            "/models",
            json!({ "name": "small", "source": { "kind": "hf_local", "path": SMALL_MODEL } }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A subscriber of replica B hears a write made through replica A (Postgres NOTIFY).
    let project = client
        .post(&a, "/projects", json!({ "name": "scale" }))
        .await;
    let run = client
        .post(&a, "/runs", json!({ "project_id": project["id"] }))
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    let mut events = client
        .http
        .get(format!("{}/api/v1/events?run_id={run_id}", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(events.status().is_success());
    // The stream is subscribed once its headers are out; give the listener a moment anyway.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = format!("/runs/{run_id}/metrics");
    client
        .post(
            &a,
            &metrics,
            json!({ "points": [{ "key": "loss", "step": 0, "value": 1.0 }] }),
        )
        .await;
    let heard = tokio::time::timeout(Duration::from_secs(15), async {
        let mut text = String::new();
        while let Some(chunk) = events.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("metrics_logged") {
                return text;
            }
        }
        text
    })
    .await
    .expect("replica B's subscriber never heard the write made through replica A");
    assert!(heard.contains(&run_id), "{heard}");
    drop(events);

    // Four workers, two per replica; jobs submitted through both are each leased once.
    let _workers: Vec<Process> = [("a1", &a), ("a2", &a), ("b1", &b), ("b2", &b)]
        .into_iter()
        .map(|(name, replica)| start_worker(replica, &token, name))
        .collect();
    let mut ids = Vec::new();
    for i in 0..8 {
        let replica = if i % 2 == 0 { &a } else { &b };
        ids.push(client.submit(replica, &model, i).await);
    }
    let jobs = client.wait_all(&b, &ids).await;
    let workers = client.get(&a, "/workers").await;
    let ours: Vec<&str> = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ours.len(), 4, "{workers}");
    for job in &jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "leased exactly once: {job}");
        assert!(ours.contains(&job["worker_id"].as_str().unwrap()), "{job}");
    }

    // Replica A dies mid-run: what it acknowledged is all there through B, and the jobs it
    // queued finish on B's workers.
    let mut acknowledged = 1;
    for step in 1..=20 {
        client
            .post(&a, &metrics, json!({ "points": [{ "key": "loss", "step": step, "value": 1.0 / f64::from(step) }] }))
            .await;
        acknowledged += 1;
    }
    let mut late = Vec::new();
    for i in 8..12 {
        late.push(client.submit(&a, &model, i).await);
    }
    let Replica { mut process, .. } = a;
    process.0.kill().unwrap();
    let _ = process.0.wait();
    let history = client
        .get(&b, &format!("/runs/{run_id}/metrics/history?key=loss"))
        .await;
    assert_eq!(
        history["steps"].as_array().unwrap().len(),
        acknowledged,
        "every point replica A acknowledged: {history}"
    );
    for job in client.wait_all(&b, &late).await {
        assert_eq!(job["status"], "succeeded", "{job}");
    }
}
