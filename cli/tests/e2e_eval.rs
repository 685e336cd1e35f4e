//! End to end: the real server on Postgres, real `crucible worker` processes, an eval job submitted
//! over REST. A worker is SIGKILLed mid-job; the next one finishes it without duplicate samples.
//! (This lives in the `crucible` package because it runs the `crucible` binary.)

mod common;

use serde_json::{Value, json};
use sqlx::PgPool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lease length for the test server: short, so a killed worker's job returns quickly.
const LEASE_SECONDS: u32 = 3;

struct Server {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(pool: &PgPool) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = crucible_server::state_with_lease(pool.clone(), LEASE_SECONDS).unwrap();
        tokio::spawn(crucible_server::serve_state(listener, state));
        let mut tx = pool.begin().await.unwrap();
        let team = crucible_server::store::teams::ensure_team(&mut tx, "e2e")
            .await
            .unwrap();
        let token = crucible_server::store::teams::create_token(&mut tx, team, "e2e")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Server {
            base,
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/api/v1{path}", self.base);
        common::post_json(&self.http, &url, &self.token, &body).await
    }

    /// A read as the test's team (reads are private to a team).
    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/api/v1{path}", self.base);
        common::get_json(&self.http, &url, &self.token).await
    }

    /// A `crucible worker` process for this server; `configure` adds its arguments and environment.
    fn worker(&self, configure: impl FnOnce(&mut Command) -> &mut Command) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crucible"));
        cmd.args([
            "worker",
            "--server",
            &self.base,
            "--token",
            &self.token,
            "--poll-seconds",
            "0.2",
            "--name",
            "e2e",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
        configure(&mut cmd)
            .spawn()
            .expect("cannot start `crucible worker`")
    }

    /// Registers the shipped small model and returns it.
    async fn register_small_model(&self) -> Value {
        self.post(
            "/models",
            json!({ "name": "crucible-mimo-small", "source": { "kind": "hf_local", "path": SMALL_MODEL } }),
        )
        .await
    }

    /// Submits a job with `spec`, runs one `crucible worker --max-jobs 1` (set up by `configure`)
    /// until it exits, and returns the job, which must have succeeded.
    async fn run_job(
        &self,
        spec: Value,
        configure: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Value {
        let job = self.post("/jobs", json!({ "spec": spec })).await;
        let mut worker = self.worker(|c| configure(c.args(["--max-jobs", "1"])));
        let done = self
            .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(600))
            .await;
        assert!(
            worker.wait().unwrap().success(),
            "the worker exits after its one job"
        );
        assert_eq!(done["status"], "succeeded", "{done}");
        done
    }

    /// Asserts that submitting `spec` is refused with 422 (and so queues nothing).
    async fn refused(&self, spec: Value, why: &str) {
        let r = self
            .http
            .post(format!("{}/api/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "spec": spec }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{why}");
    }

    /// The steps of the checkpoint models named `<prefix>-step<N>`, sorted; each must be a
    /// checkpoint of `run_id`.
    async fn checkpoint_steps(&self, prefix: &str, run_id: &str) -> Vec<i64> {
        let models = self.get("/models").await;
        let mut steps: Vec<i64> = models
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{prefix}-step")))
            })
            .map(|m| {
                assert_eq!(m["source"]["kind"], "checkpoint");
                assert_eq!(m["source"]["run_id"].as_str(), Some(run_id));
                m["source"]["step"].as_i64().unwrap()
            })
            .collect();
        steps.sort_unstable();
        steps
    }

    /// The pass@1 and every problem's (one) completion of the eval that job `done` ran, which
    /// must have `problems` problems.
    async fn greedy_outcome(&self, done: &Value, problems: usize) -> (f64, Vec<(i64, String)>) {
        let eval = self
            .get(&format!("/evals?job_id={}", done["id"].as_str().unwrap()))
            .await[0]
            .clone();
        let samples = self
            .get(&format!(
                "/evals/{}/samples?limit=200",
                eval["id"].as_str().unwrap()
            ))
            .await;
        let mut texts: Vec<(i64, String)> = samples
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let s = &p["samples"][0];
                (
                    p["problem_idx"].as_i64().unwrap(),
                    s["completion"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        texts.sort();
        assert_eq!(texts.len(), problems);
        (pass1(&eval), texts)
    }

    /// Polls the job until it ends or `timeout` passes.
    async fn wait_job(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.get(&format!("/jobs/{id}")).await;
            if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap_or(""))
            {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job did not finish in time: {job}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The pass@1 score of an eval as the API returns it.
fn pass1(eval: &Value) -> f64 {
    eval["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == "pass@1")
        .expect("pass@1 reported")["value"]
        .as_f64()
        .unwrap()
}

/// The shipped small model.
const SMALL_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/crucible-mimo-small");

fn fixture_model() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../gpu/tests/fixtures/tiny-mimo"
    )
    .to_string()
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn eval_job_survives_a_killed_worker(pool: PgPool) {
    let Some(data_dir) = crucible_types::testing::data_dir("eval_job_survives_a_killed_worker")
    else {
        return;
    };
    let server = Server::start(&pool).await;
    let model = server.post("/models", json!({ "name": "tiny-mimo", "source": { "kind": "hf_local", "path": fixture_model() } })).await;
    // The fixture model's context is 256 tokens: evaluate the shortest GSM8K problems, imported as a dataset.
    let problems = 64;
    let text = std::fs::read_to_string(data_dir.join("gsm8k/test.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let problem_len = |l: &str| {
        serde_json::from_str::<Value>(l).unwrap()["problem"]
            .as_str()
            .unwrap()
            .len()
    };
    lines.sort_by_key(|l| problem_len(l));
    let body = lines[..problems].join("\n");
    let imported: Value = server
        .http
        .post(format!(
            "{}/api/v1/datasets/import?name=gsm8k-short&kind=math",
            server.base
        ))
        .bearer_auth(&server.token)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bench = format!("dataset:{}", imported["dataset"]["id"].as_str().unwrap());
    let job = server
        .post("/jobs", json!({ "spec": { "kind": "eval", "model_id": model["id"], "benchmarks": [bench],
            "n_samples": 4, "ks": [1, 4], "sampling": { "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 32, "seed": 7 } } }))
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();

    // First worker: killed as soon as some samples have been uploaded.
    let mut first = server.worker(|c| c.env("CRUCIBLE_DATA_DIR", &data_dir));
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM eval_samples")
            .fetch_one(&pool)
            .await
            .unwrap();
        if stored > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker uploaded nothing"
        );
        let job = server.get(&format!("/jobs/{job_id}")).await;
        assert!(
            ["queued", "running"].contains(&job["status"].as_str().unwrap_or("")),
            "the job ended before the kill: {job}"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first worker exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap(); // SIGKILL: no goodbye, the lease just stops being renewed
    first.wait().unwrap();
    let partial: i64 = sqlx::query_scalar("SELECT count(*) FROM eval_samples")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        partial < (problems * 4) as i64,
        "the kill came after the whole eval was uploaded ({partial} samples)"
    );

    let mut second = server.worker(|c| c.env("CRUCIBLE_DATA_DIR", &data_dir));
    let done = server.wait_job(&job_id, Duration::from_secs(300)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "the second lease finished the job");

    let evals = server.get(&format!("/evals?job_id={job_id}")).await;
    let eval = &evals[0];
    assert_eq!(
        (eval["status"].as_str(), eval["problems"].as_i64()),
        (Some("finished"), Some(problems as i64))
    );
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (problem_idx, sample_idx)) FROM eval_samples WHERE eval_id = $1::uuid",
    )
    .bind(eval["id"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct),
        ((problems * 4) as i64, (problems * 4) as i64),
        "every sample once, none twice"
    );
    let correct: i64 = sqlx::query_scalar("SELECT count(*) FROM eval_samples WHERE correct")
        .fetch_one(&pool)
        .await
        .unwrap();
    let scores: Vec<Value> = eval["scores"].as_array().unwrap().clone();
    let pass1 = scores
        .iter()
        .find(|s| s["metric"] == "pass@1")
        .expect("pass@1 reported");
    let expected = correct as f64 / (problems * 4) as f64;
    assert!(
        (pass1["value"].as_f64().unwrap() - expected).abs() < 1e-9,
        "pass@1 = mean correctness"
    );
    assert!(scores.iter().any(|s| s["metric"] == "pass@4"));
    let board = server.get("/leaderboard").await;
    assert_eq!(board[0]["benchmark"].as_str(), Some(bench.as_str()));
    let run = server
        .get(&format!("/runs/{}", done["run_id"].as_str().unwrap()))
        .await;
    assert_eq!(run["status"], "finished");
}

/// With no data folder at all, the shipped model is evaluated on the built-in synthetic benchmark.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn shipped_model_on_the_synthetic_benchmark_needs_no_data(pool: PgPool) {
    let server = Server::start(&pool).await;
    let model = server.register_small_model().await;
    let spec = json!({ "kind": "eval", "model_id": model["id"], "benchmarks": ["synthetic"], "limit": 20, "preset": "greedy" });
    let done = server
        .run_job(spec, |c| c.env_remove("CRUCIBLE_DATA_DIR"))
        .await;
    let evals = server
        .get(&format!("/evals?job_id={}", done["id"].as_str().unwrap()))
        .await;
    assert_eq!(evals[0]["problems"], 20);
    let samples = server
        .get(&format!(
            "/evals/{}/samples?limit=200",
            evals[0]["id"].as_str().unwrap()
        ))
        .await;
    let samples = samples.as_array().unwrap();
    assert_eq!(samples.len(), 20);
    let correct = samples
        .iter()
        .filter(|p| p["correct"].as_i64() == Some(1))
        .count() as f64;
    assert!((pass1(&evals[0]) - correct / 20.0).abs() < 1e-9);
    // Every completion of the SFT model ends in a boxed answer, right or wrong.
    assert!(
        samples
            .iter()
            .all(|p| p["samples"][0]["extracted"].is_string()),
        "{samples:?}"
    );
}

/// `crucible compare` pairs two evals of the shipped model problem by problem: the difference it
/// reports is that of the two pass@1 scores, and the synthetic levels are compared separately.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn compare_pairs_two_evals_by_problem(pool: PgPool) {
    let server = Server::start(&pool).await;
    let model = server.register_small_model().await;
    // 250 level-1 problems come first: 260 reach into level 2.
    let mut evals = Vec::new();
    for sampling in [
        json!({ "preset": "greedy" }),
        json!({ "preset": "mimo", "n_samples": 2 }),
    ] {
        let mut spec = json!({ "kind": "eval", "model_id": model["id"], "benchmarks": ["synthetic"], "limit": 260 });
        spec.as_object_mut()
            .unwrap()
            .extend(sampling.as_object().unwrap().clone());
        let done = server.run_job(spec, |c| c).await;
        let eval = server
            .get(&format!("/evals?job_id={}", done["id"].as_str().unwrap()))
            .await[0]
            .clone();
        evals.push(eval);
    }
    let mut compare = Command::new(env!("CARGO_BIN_EXE_crucible"));
    compare
        .args([
            "compare",
            "--server",
            &server.base,
            "--token",
            &server.token,
        ])
        .args(evals.iter().map(|e| e["id"].as_str().unwrap()))
        .env("RUST_LOG", "warn");
    // Off the runtime's thread: the server answering the command runs on it.
    let out = tokio::task::spawn_blocking(move || compare.output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |subset: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(subset))
            .unwrap_or_else(|| panic!("no {subset} row in:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let all = row("all");
    assert_eq!(all[1], "260", "{text}");
    let difference: f64 = all[8].parse().unwrap();
    assert!(
        (difference - (pass1(&evals[1]) - pass1(&evals[0]))).abs() < 1e-3,
        "{text}"
    );
    assert_eq!(row("synthetic-s1d1")[1], "250");
    assert_eq!(row("synthetic-s2d2")[1], "10");
}

/// An SFT job fine-tunes the shipped model for a few steps: its loss curve lands on the run and the
/// result is registered as a checkpoint model that loads.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn sft_job_streams_metrics_and_registers_its_model(pool: PgPool) {
    let server = Server::start(&pool).await;
    let work = std::env::temp_dir().join(format!("crucible-e2e-sft-{}", std::process::id()));
    let config = json!({
        "kind": "sft", "init": { "from": { "dir": SMALL_MODEL } },
        "data": { "synthetic": { "seed": 3, "max_steps": 2, "max_digits": 2 } },
        "out_dir": "sft", "seq_len": 128, "micro_batch": 2, "grad_accum": 1, "steps": 3,
        "schedule": { "kind": "constant", "warmup": 0 }, "seed": 1
    });
    server
        .refused(
            json!({ "kind": "sft", "config": { "kind": "pretrain", "steps": 3 } }),
            "a pretrain config in an sft job is refused",
        )
        .await;
    let spec = json!({ "kind": "sft", "config": config, "model_name": "small-sft-e2e" });
    let done = server
        .run_job(spec, |c| c.env("CRUCIBLE_HOME", &work))
        .await;
    let run_id = done["run_id"].as_str().unwrap();
    let run = server.get(&format!("/runs/{run_id}")).await;
    assert_eq!(
        (
            run["kind"].as_str(),
            run["status"].as_str(),
            run["params"]["steps"].as_str()
        ),
        (Some("sft"), Some("finished"), Some("3"))
    );
    let loss = server
        .get(&format!("/runs/{run_id}/metrics/history?key=train/loss"))
        .await;
    assert_eq!(loss["steps"], json!([1, 2, 3]), "{loss}");
    let models = server.get("/models").await;
    let trained = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "small-sft-e2e")
        .expect("model registered");
    assert_eq!(
        (
            trained["source"]["kind"].as_str(),
            trained["source"]["step"].as_i64()
        ),
        (Some("checkpoint"), Some(3))
    );
    assert_eq!(trained["architecture"], "MiMoForCausalLM");
    let _ = std::fs::remove_dir_all(&work);
}

/// An RL job on the shipped model: per-step metrics and held-out evals land on the run, every
/// step's rollouts are browsable as the run's completions, and every checkpoint is registered as a
/// model of the run.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn rl_job_logs_metrics_stores_rollouts_and_registers_checkpoints(pool: PgPool) {
    let server = Server::start(&pool).await;
    let work = std::env::temp_dir().join(format!("crucible-e2e-rl-{}", std::process::id()));
    let model = server.register_small_model().await;
    let config = json!({
        "data": [{ "synthetic": { "seed": 4, "levels": [{ "steps": 1, "digits": 1 }], "problems": 16 } }],
        "steps": 2, "group_size": 4, "groups_per_batch": 2, "mini_batches": 2, "max_new_tokens": 40,
        "lr": 1e-4, "checkpoint_every": 1, "seed": 3,
        "eval": { "benchmark": "synthetic", "limit": 8, "n_samples": 1, "temperature": 0.0, "max_new_tokens": 40 }
    });
    server
        .refused(
            json!({ "kind": "rl", "model_id": model["id"], "config": { "group_size": 1 } }),
            "an invalid RL config is refused at submission",
        )
        .await;
    let spec =
        json!({ "kind": "rl", "model_id": model["id"], "config": config, "model_name": "rl-e2e" });
    let done = server
        .run_job(spec, |c| c.env("CRUCIBLE_HOME", &work))
        .await;
    let run_id = done["run_id"].as_str().unwrap();
    let run = server.get(&format!("/runs/{run_id}")).await;
    assert_eq!(
        (
            run["kind"].as_str(),
            run["status"].as_str(),
            run["params"]["group_size"].as_str()
        ),
        (Some("rl"), Some("finished"), Some("4"))
    );
    let history = |key: &str| format!("/runs/{run_id}/metrics/history?key={key}");
    for key in [
        "rollout/reward_mean",
        "batch/kept_groups",
        "train/clip_fraction",
        "time/generate_s",
    ] {
        assert_eq!(
            server.get(&history(key)).await["steps"],
            json!([1, 2]),
            "{key}"
        );
    }
    assert_eq!(
        server.get(&history("eval/synthetic/pass@1")).await["steps"],
        json!([0, 2]),
        "held-out eval before the first and after the last step"
    );
    let rollouts = server
        .get(&format!("/runs/{run_id}/completions?step=2&limit=1000"))
        .await;
    let rollouts = rollouts.as_array().unwrap();
    assert!(
        rollouts.len() >= 8 && rollouts.len() % 4 == 0,
        "{}",
        rollouts.len()
    );
    for r in rollouts {
        assert_eq!(r["step"], 2);
        assert!(r["reward"].is_number() && r["verdict"].is_string(), "{r}");
        assert!(r["prompt"].as_str().unwrap().contains('?'), "{r}");
    }
    assert_eq!(server.checkpoint_steps("rl-e2e", run_id).await, [1, 2]);
    let _ = std::fs::remove_dir_all(&work);
}

/// A worker SIGKILLed in the middle of an RL job: the job's next lease resumes the run from its
/// last checkpoint on the same machine (it does not start over), and the run ends with every
/// step's metrics, rollouts and checkpoint model exactly once.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn rl_job_resumes_after_a_killed_worker(pool: PgPool) {
    // Long enough that the kill at step 2 always lands mid-run.
    const STEPS: i64 = 12;
    let server = Server::start(&pool).await;
    let work = std::env::temp_dir().join(format!("crucible-e2e-rl-kill-{}", std::process::id()));
    let model = server.register_small_model().await;
    let config = json!({
        "data": [{ "synthetic": { "seed": 5, "levels": [{ "steps": 1, "digits": 1 }], "problems": 32 } }],
        "steps": STEPS, "group_size": 4, "groups_per_batch": 2, "mini_batches": 1, "max_new_tokens": 40,
        "lr": 1e-4, "checkpoint_every": 1, "eval_every": 0, "seed": 9,
        "eval": { "benchmark": "synthetic", "limit": 4, "n_samples": 1, "temperature": 0.0, "max_new_tokens": 40 }
    });
    let job = server
        .post("/jobs", json!({ "spec": { "kind": "rl", "model_id": model["id"], "config": config, "model_name": "rl-kill" } }))
        .await;
    let job_id = job["id"].as_str().unwrap();
    let run_id = job["run_id"].as_str().unwrap();
    let history = |key: &str| format!("/runs/{run_id}/metrics/history?key={key}");
    let logged_steps = async |key: &str| -> Vec<i64> {
        let steps = server.get(&history(key)).await["steps"].clone();
        serde_json::from_value(steps).unwrap_or_default()
    };

    // Step 2's metrics are logged after step 1's checkpoint is written: kill then.
    let mut first = server.worker(|c| c.env("CRUCIBLE_HOME", &work));
    let deadline = Instant::now() + Duration::from_secs(300);
    while !logged_steps("rollout/reward_mean").await.contains(&2) {
        assert!(
            Instant::now() < deadline,
            "the first worker logged no step 2"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first worker exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap(); // SIGKILL: the lease just stops being renewed
    first.wait().unwrap();
    let at_kill = logged_steps("rollout/reward_mean").await;
    assert!(
        !at_kill.contains(&STEPS),
        "the kill came after the last step: {at_kill:?}"
    );

    let second = server.worker(|c| {
        c.args(["--max-jobs", "1"])
            .env("CRUCIBLE_HOME", &work)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
    });
    let done = server.wait_job(job_id, Duration::from_secs(600)).await;
    // Off the runtime's thread: the worker may still talk to the server while it exits.
    let output = tokio::task::spawn_blocking(move || second.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(done["status"], "succeeded", "{done}\n{log}");
    assert_eq!(done["attempts"], 2, "the second lease finished the job");
    assert!(
        log.lines().any(|l| l.contains("resuming RL run")),
        "the second attempt resumed from the checkpoint instead of starting over:\n{log}"
    );

    let all: Vec<i64> = (1..=STEPS).collect();
    for key in ["rollout/reward_mean", "train/loss", "time/step_s"] {
        assert_eq!(logged_steps(key).await, all, "{key}");
    }
    assert_eq!(logged_steps("eval/synthetic/pass@1").await, [0, STEPS]);
    assert_eq!(server.checkpoint_steps("rl-kill", run_id).await, all);
    for step in [1, STEPS] {
        let rollouts = server
            .get(&format!(
                "/runs/{run_id}/completions?step={step}&limit=1000"
            ))
            .await;
        let rollouts = rollouts.as_array().unwrap();
        assert!(
            rollouts.len() >= 8 && rollouts.len() % 4 == 0,
            "step {step}: {rollouts:?}"
        );
        assert!(rollouts.iter().all(|r| r["verdict"].is_string()));
    }
    let run = server.get(&format!("/runs/{run_id}")).await;
    assert_eq!(run["status"], "finished");
    let _ = std::fs::remove_dir_all(&work);
}

/// An eval job that asks for `wgpu` is leased by a worker that offers it (Mesa's software
/// Vulkan in CI), runs the model there, and scores exactly what a CPU worker scores: the same
/// greedy completion for every problem.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn an_eval_on_a_wgpu_worker_scores_what_the_cpu_worker_scores(pool: PgPool) {
    if let Err(e) = crucible_gpu::device::wgpu_device() {
        assert!(
            std::env::var("CRUCIBLE_REQUIRE_WGPU").as_deref() != Ok("1"),
            "CRUCIBLE_REQUIRE_WGPU=1 but {e}"
        );
        eprintln!("skipping: {e}");
        return;
    }
    let server = Server::start(&pool).await;
    let model = server.register_small_model().await;
    let spec = json!({ "kind": "eval", "model_id": model["id"], "benchmarks": ["synthetic"], "limit": 24, "preset": "greedy" });
    let mut completions = Vec::new();
    for device in ["cpu", "wgpu"] {
        let job = server
            .post(
                "/jobs",
                json!({ "spec": spec, "requirements": { "device": device } }),
            )
            .await;
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut worker = server.worker(|c| {
            c.args(["--max-jobs", "1"])
                .env("RUST_LOG", "crucible_worker=info")
                .env_remove("CRUCIBLE_DEVICE")
                .stderr(log.reopen().unwrap())
        });
        let done = server
            .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(600))
            .await;
        assert!(worker.wait().unwrap().success());
        assert_eq!(done["status"], "succeeded", "{done}");
        let logged = std::fs::read_to_string(log.path()).unwrap();
        let loaded = logged
            .lines()
            .find(|l| l.contains("model loaded"))
            .unwrap_or_else(|| panic!("the worker logged no model load: {logged}"));
        assert_eq!(loaded.contains("wgpu: "), device == "wgpu", "{loaded}");
        completions.push(server.greedy_outcome(&done, 24).await);
    }
    assert_eq!(
        completions[0], completions[1],
        "the same greedy completions and pass@1"
    );
}

/// A worker's `/metrics` (Prometheus's parser reads it) follows its jobs: the finished eval is
/// counted by kind and outcome, the tokens it decoded and the grades it waited for are those of
/// the samples it uploaded, and nothing is left running or queued.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn worker_metrics_follow_its_jobs(pool: PgPool) {
    use crucible_types::testing::{parse_openmetrics, prometheus_python, sample_value};
    let Some(python) = prometheus_python("worker_metrics_follow_its_jobs") else {
        return;
    };
    let server = Server::start(&pool).await;
    let model = server.register_small_model().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut worker = server.worker(|c| {
        c.env_remove("CRUCIBLE_DATA_DIR")
            .args(["--metrics-addr", &addr])
    });
    let spec = json!({ "kind": "eval", "model_id": model["id"], "benchmarks": ["synthetic"], "limit": 6, "preset": "greedy" });
    let job = server.post("/jobs", json!({ "spec": spec })).await;
    let done = server
        .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(600))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let evals = server
        .get(&format!("/evals?job_id={}", done["id"].as_str().unwrap()))
        .await;
    let problems = server
        .get(&format!(
            "/evals/{}/samples?limit=200",
            evals[0]["id"].as_str().unwrap()
        ))
        .await;
    let samples: Vec<&Value> = problems
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["samples"].as_array().unwrap())
        .collect();
    let tokens: i64 = samples.iter().map(|s| s["tokens"].as_i64().unwrap()).sum();

    // The job is reported done just before the worker counts it: poll briefly.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let parsed = parse_openmetrics(&python, &page);
        let eval_done = [("kind", "eval"), ("outcome", "succeeded")];
        if sample_value(&parsed, "crucible_worker_jobs_total", &eval_done) == Some(1.0)
            || Instant::now() > deadline
        {
            break parsed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    worker.kill().unwrap();
    let _ = worker.wait();
    let value = |name: &str, labels: &[(&str, &str)]| sample_value(&page, name, labels);
    assert_eq!(
        value(
            "crucible_worker_jobs_total",
            &[("kind", "eval"), ("outcome", "succeeded")]
        ),
        Some(1.0),
        "{page:?}"
    );
    assert_eq!(
        value("crucible_worker_jobs_running", &[("kind", "eval")]),
        Some(0.0)
    );
    assert!(tokens > 0);
    assert_eq!(
        value("crucible_worker_tokens_generated_total", &[]),
        Some(tokens as f64)
    );
    assert_eq!(
        value("crucible_worker_verifier_wait_seconds_count", &[]),
        Some(samples.len() as f64),
        "one grade per sample"
    );
    assert_eq!(
        value("crucible_worker_verifier_queue_depth", &[]),
        Some(0.0)
    );
    assert_eq!(
        value("crucible_worker_job_progress_total", &[]),
        Some(0.0),
        "idle"
    );
}

/// `crucible submit eval --model owner/name` registers the hub model under that name the first
/// time and reuses it after: both jobs name the one model, whose source is the hub id.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn submit_by_hub_id_registers_the_model_once(pool: PgPool) {
    let server = Server::start(&pool).await;
    let (base, token) = (server.base.clone(), server.token.clone());
    let submit = move || {
        let out = Command::new(env!("CARGO_BIN_EXE_crucible"))
            .args(["submit", "eval", "--server", &base, "--token", &token])
            .args([
                "--model",
                "XiaomiMiMo/MiMo-7B-RL@main",
                "--benchmark",
                "synthetic",
            ])
            .output()
            .expect("cannot run `crucible submit`");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let twice = submit.clone();
    tokio::task::spawn_blocking(move || {
        submit();
        twice();
    })
    .await
    .unwrap();
    let models = server.get("/models").await;
    let models = models.as_array().unwrap();
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(models[0]["name"], "XiaomiMiMo/MiMo-7B-RL@main");
    assert_eq!(
        models[0]["source"],
        json!({ "kind": "hf_hub", "repo": "XiaomiMiMo/MiMo-7B-RL", "revision": "main" })
    );
    let jobs = server.get("/jobs").await;
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(
        jobs.iter()
            .all(|j| j["spec"]["model_id"] == models[0]["id"]),
        "{jobs:?}"
    );
}

/// Closing the loop: the shipped model served by `crucible serve-model`, registered as an
/// `openai` endpoint model, evaluates through the harness's OpenAI generator to exactly the
/// greedy completions and pass@1 that a worker running the weights itself gets.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_served_model_evaluated_as_an_endpoint_scores_what_the_local_worker_scores(pool: PgPool) {
    let server = Server::start(&pool).await;
    let local = server.register_small_model().await;
    let served = common::ServedModel::start(SMALL_MODEL, &["--served-model-name", "small-served"]);
    let endpoint = server
        .post(
            "/models",
            json!({ "name": "small-served", "source": { "kind": "openai", "base_url": format!("{}/v1", served.base), "model": "small-served" } }),
        )
        .await;
    let mut outcomes = Vec::new();
    for model in [&local, &endpoint] {
        // Greedy, with a budget that fits the small model's 512-token context (the server
        // refuses a request that cannot fit, as vLLM does).
        let sampling = json!({ "temperature": 0, "max_new_tokens": 400 });
        let spec = json!({ "kind": "eval", "model_id": model["id"], "benchmarks": ["synthetic"], "limit": 24, "sampling": sampling });
        let done = server.run_job(spec, |c| c).await;
        outcomes.push(server.greedy_outcome(&done, 24).await);
    }
    assert!(
        outcomes[0].1.iter().any(|(_, t)| !t.is_empty()),
        "the model wrote something"
    );
    assert_eq!(
        outcomes[0], outcomes[1],
        "the same greedy completions and pass@1"
    );
}
