//! The job queue over REST: submission rules, leases matched to capabilities, heartbeats, expiry
//! with bounded attempts, cancellation, idempotent sample uploads, scores and the leaderboard.

mod common;

use axum::http::StatusCode;
use common::{Api, assert_error, token};
use serde_json::{Value, json};
use sqlx::PgPool;

async fn worker(api: &Api, t: &str, devices: Value, memory: f64) -> String {
    let body = json!({ "name": "w", "capabilities": { "devices": devices, "memory_gb": memory, "kinds": ["eval", "generate"] } });
    let (s, w) = api.post("/api/v1/workers", t, body).await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    w["id"].as_str().unwrap().to_string()
}

fn eval_job(model: &str, benchmarks: Value) -> Value {
    json!({ "spec": { "kind": "eval", "model_id": model, "benchmarks": benchmarks, "preset": "mimo", "n_samples": 2, "ks": [1, 2] } })
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn submission_is_validated_and_creates_run_and_evals(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let m = api.local_model(&t, "tiny", json!([])).await;
    let (s, job) = api
        .post(
            "/api/v1/jobs",
            &t,
            eval_job(&m, json!(["gsm8k", "aime2024"])),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(
        (job["status"].as_str(), job["kind"].as_str()),
        (Some("queued"), Some("eval"))
    );
    let (_, run) = api
        .get(&format!("/api/v1/runs/{}", job["run_id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (run["kind"].as_str(), run["status"].as_str()),
        (Some("eval"), Some("queued"))
    );
    let (_, evals) = api
        .get(&format!(
            "/api/v1/evals?job_id={}",
            job["id"].as_str().unwrap()
        ))
        .await;
    let mut ns: Vec<(String, i64)> = evals
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["benchmark"].as_str().unwrap().into(),
                e["n_samples"].as_i64().unwrap(),
            )
        })
        .collect();
    ns.sort();
    assert_eq!(ns, [("aime2024".to_string(), 2), ("gsm8k".to_string(), 2)]);

    let bad = |spec: Value| json!({ "spec": spec });
    assert_error(
        api.post(
            "/api/v1/jobs",
            &t,
            bad(json!({ "kind": "eval", "model_id": m, "benchmarks": [] })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("spec.benchmarks"),
    );
    let missing_model =
        bad(json!({ "kind": "eval", "model_id": uuid::Uuid::new_v4(), "benchmarks": ["gsm8k"] }));
    assert_error(
        api.post("/api/v1/jobs", &t, missing_model).await,
        StatusCode::NOT_FOUND,
        Some("spec.model_id"),
    );
    let big_k = bad(
        json!({ "kind": "eval", "model_id": m, "benchmarks": ["gsm8k"], "n_samples": 2, "ks": [4] }),
    );
    assert_error(
        api.post("/api/v1/jobs", &t, big_k).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("spec.ks[0]"),
    );
    let hot = bad(
        json!({ "kind": "eval", "model_id": m, "benchmarks": ["gsm8k"], "sampling": { "temperature": -1.0 } }),
    );
    assert_error(
        api.post("/api/v1/jobs", &t, hot).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("spec.sampling.temperature"),
    );
    assert_error(
        api.post("/api/v1/jobs", &t, bad(json!({ "kind": "train" })))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("spec.kind"),
    );
    let gpu = json!({ "spec": { "kind": "generate", "model_id": m, "prompts": ["hi"] }, "requirements": { "device": "tpu" } });
    assert_error(
        api.post("/api/v1/jobs", &t, gpu).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("requirements.device"),
    );
    let other = token(&pool, "beta").await;
    assert_error(
        api.post("/api/v1/jobs", &other, eval_job(&m, json!(["gsm8k"])))
            .await,
        StatusCode::NOT_FOUND,
        Some("spec.model_id"),
    );
    let (_, jobs) = api.get("/api/v1/jobs").await;
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "refused submissions left nothing behind"
    );
}

/// What used to be queued and fail later on the worker is refused at the door, naming the field.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn jobs_that_cannot_run_are_refused_before_they_are_queued(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let m = api.local_model(&t, "tiny", json!([])).await;
    let ghost = uuid::Uuid::new_v4();
    let eval = |extra: Value| {
        let mut spec = json!({ "kind": "eval", "model_id": m, "benchmarks": ["gsm8k"] });
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "spec": spec })
    };
    let cases = [
        (
            eval(json!({ "benchmarks": ["gsm8k", "gsm9k"] })),
            "spec.benchmarks[1]",
        ),
        (
            eval(json!({ "benchmarks": ["dataset:nope"] })),
            "spec.benchmarks[0]",
        ),
        (
            eval(json!({ "benchmarks": ["gsm8k", "gsm8k"] })),
            "spec.benchmarks[1]",
        ),
        (
            eval(json!({ "sampling": { "temperature": 50.0 } })),
            "spec.sampling.temperature",
        ),
        (
            eval(json!({ "sampling": { "max_new_tokens": 1_000_000_000u32 } })),
            "spec.sampling.max_new_tokens",
        ),
        (eval(json!({ "n_samples": 100_000 })), "spec.n_samples"),
        (
            json!({ "spec": { "kind": "generate", "model_id": m, "prompts": ["hi"], "sampling": { "temperature": 50.0 } } }),
            "spec.sampling.temperature",
        ),
        (
            json!({ "spec": { "kind": "sft", "config": {
                "kind": "sft", "init": { "from": { "dir": "/tmp/model" } },
                "data": { "synthetic": { "seed": 1, "max_steps": 2, "max_digits": 2 } },
                "out_dir": "sft", "seq_len": 128, "micro_batch": 2, "grad_accum": 1, "steps": 0,
                "schedule": { "kind": "constant", "warmup": 0 } } } }),
            "spec.config.steps",
        ),
        (
            json!({ "spec": { "kind": "generate", "model_id": m, "prompts": ["hi"] }, "priority": 5000 }),
            "priority",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = api.post("/api/v1/jobs", &t, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        let named = err["error"]["field"].as_str().unwrap_or_default();
        assert!(
            named.starts_with(field),
            "{body}: named {named:?}, want {field}"
        );
    }
    // A dataset that does not exist is not found, like an unknown model.
    assert_error(
        api.post(
            "/api/v1/jobs",
            &t,
            eval(json!({ "benchmarks": [format!("dataset:{ghost}")] })),
        )
        .await,
        StatusCode::NOT_FOUND,
        Some("spec.benchmarks[0]"),
    );
    let (_, jobs) = api.get("/api/v1/jobs").await;
    assert_eq!(jobs, json!([]), "nothing was queued");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 0, "no run was created for a refused job");
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn leases_match_capabilities_priority_and_team(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let m = api.local_model(&t, "tiny", json!([])).await;
    let job_of = |prio: i32, device: Option<&str>| json!({ "spec": { "kind": "generate", "model_id": m, "prompts": ["2+2="] }, "priority": prio, "requirements": { "device": device, "min_memory_gb": 10.0 } });
    let (_, low) = api.post("/api/v1/jobs", &t, job_of(0, None)).await;
    let (_, cuda) = api.post("/api/v1/jobs", &t, job_of(5, Some("cuda"))).await;
    let (_, high) = api.post("/api/v1/jobs", &t, job_of(9, Some("cpu"))).await;

    let small = worker(&api, &t, json!(["cpu"]), 4.0).await;
    let (s, _) = api
        .post(&format!("/api/v1/workers/{small}/lease"), &t, json!({}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "too little memory for every job");
    let cpu = worker(&api, &t, json!(["cpu"]), 32.0).await;
    let (_, l1) = api
        .post(&format!("/api/v1/workers/{cpu}/lease"), &t, json!({}))
        .await;
    assert_eq!(l1["job"]["id"], high["id"], "highest priority first");
    assert_eq!(l1["job"]["attempts"], 1);
    assert_eq!(l1["model"]["name"], "tiny");
    let (_, l2) = api
        .post(&format!("/api/v1/workers/{cpu}/lease"), &t, json!({}))
        .await;
    assert_eq!(
        l2["job"]["id"], low["id"],
        "the cuda job is skipped by a cpu worker"
    );
    let other_team = token(&pool, "beta").await;
    let foreign = worker(&api, &other_team, json!(["cuda"]), 80.0).await;
    let (s, _) = api
        .post(
            &format!("/api/v1/workers/{foreign}/lease"),
            &other_team,
            json!({}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "another team's worker gets nothing"
    );
    let (s, _) = api
        .post(&format!("/api/v1/workers/{foreign}/lease"), &t, json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a token cannot drive (or learn of) another team's worker"
    );
    let gpu = worker(&api, &t, json!(["cuda", "cpu"]), 80.0).await;
    let (_, l3) = api
        .post(&format!("/api/v1/workers/{gpu}/lease"), &t, json!({}))
        .await;
    assert_eq!(l3["job"]["id"], cuda["id"]);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn silent_workers_lose_the_lease_and_attempts_are_bounded(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let m = api.local_model(&t, "tiny", json!([])).await;
    let mut job = eval_job(&m, json!(["gsm8k"]));
    job["max_attempts"] = json!(2);
    let (_, job) = api.post("/api/v1/jobs", &t, job).await;
    let id = job["id"].as_str().unwrap();
    let w = worker(&api, &t, json!(["cpu"]), 8.0).await;
    let expire = || {
        sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 second'").execute(&pool)
    };

    let (_, first) = api
        .post(&format!("/api/v1/workers/{w}/lease"), &t, json!({}))
        .await;
    assert_eq!(first["job"]["id"], id);
    let hb = json!({ "worker_id": w, "progress": { "done": 3, "total": 10, "message": "gsm8k" } });
    let (s, reply) = api
        .post(&format!("/api/v1/jobs/{id}/heartbeat"), &t, hb.clone())
        .await;
    assert_eq!(
        (s, reply["cancel"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    expire().await.unwrap();
    let (_, second) = api
        .post(&format!("/api/v1/workers/{w}/lease"), &t, json!({}))
        .await;
    assert_eq!(
        (
            second["job"]["id"].as_str(),
            second["job"]["attempts"].as_i64()
        ),
        (Some(id), Some(2))
    );
    assert!(
        second["job"]["progress"]["done"] == 3,
        "progress survives the requeue"
    );
    expire().await.unwrap();
    let (s, _) = api
        .post(&format!("/api/v1/workers/{w}/lease"), &t, json!({}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, failed) = api.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("lease expired"),
        "{failed}"
    );
    let (_, run) = api
        .get(&format!(
            "/api/v1/runs/{}",
            failed["run_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(run["status"], "failed");
    let lost = api
        .post(&format!("/api/v1/jobs/{id}/heartbeat"), &t, hb)
        .await;
    assert_eq!(lost.1["error"]["code"], "lease_lost", "{}", lost.1);
    assert_error(lost, StatusCode::CONFLICT, Some("worker_id"));
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn cancellation_of_queued_and_running_jobs(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let m = api.local_model(&t, "tiny", json!([])).await;
    let (_, queued) = api
        .post("/api/v1/jobs", &t, eval_job(&m, json!(["gsm8k"])))
        .await;
    let (_, c) = api
        .post(
            &format!("/api/v1/jobs/{}/cancel", queued["id"].as_str().unwrap()),
            &t,
            json!({}),
        )
        .await;
    assert_eq!(c["status"], "cancelled");
    assert_error(
        api.post(
            &format!("/api/v1/jobs/{}/cancel", queued["id"].as_str().unwrap()),
            &t,
            json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        None,
    );

    let (_, running) = api
        .post("/api/v1/jobs", &t, eval_job(&m, json!(["gsm8k"])))
        .await;
    let id = running["id"].as_str().unwrap();
    let w = worker(&api, &t, json!(["cpu"]), 8.0).await;
    let (_, lease) = api
        .post(&format!("/api/v1/workers/{w}/lease"), &t, json!({}))
        .await;
    assert_eq!(lease["job"]["id"], id, "the cancelled job is never leased");
    api.post(&format!("/api/v1/jobs/{id}/cancel"), &t, json!({}))
        .await;
    let (_, reply) = api
        .post(
            &format!("/api/v1/jobs/{id}/heartbeat"),
            &t,
            json!({ "worker_id": w }),
        )
        .await;
    assert_eq!(reply["cancel"], true);
    let (_, done) = api
        .post(
            &format!("/api/v1/jobs/{id}/complete"),
            &t,
            json!({ "worker_id": w, "error": "cancelled by request" }),
        )
        .await;
    assert_eq!(done["status"], "cancelled");
    let (_, run) = api
        .get(&format!(
            "/api/v1/runs/{}",
            done["run_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(run["status"], "killed");
}

fn sample(p: i32, s: i32, correct: bool) -> Value {
    json!({ "problem_idx": p, "sample_idx": s, "problem_id": format!("q{p}"), "prompt": format!("problem {p}"),
            "completion": "\\boxed{1}", "extracted": "1", "verdict": if correct { "correct" } else { "wrong" },
            "correct": correct, "reward": if correct { 1.0 } else { 0.0 }, "tokens": 5, "truncated": false })
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn samples_are_idempotent_and_scores_reach_the_leaderboard(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let train_text = "Natalia sold clips to 48 of her friends in April and then she sold half as many clips in May";
    let body = format!("{{\"problem\":\"{train_text}\",\"answer\":\"72\"}}\n");
    let (_, ds) = api
        .raw(
            axum::http::Method::POST,
            "/api/v1/datasets/import?name=train&kind=math",
            Some(&t),
            Some(body),
            "application/x-ndjson",
        )
        .await;
    let m = api
        .local_model(&t, "tiny", json!([ds["dataset"]["id"]]))
        .await;
    let (_, job) = api
        .post("/api/v1/jobs", &t, eval_job(&m, json!(["gsm8k"])))
        .await;
    let w = worker(&api, &t, json!(["cpu"]), 8.0).await;
    let (_, lease) = api
        .post(&format!("/api/v1/workers/{w}/lease"), &t, json!({}))
        .await;
    let eval_id = lease["evals"][0]["eval_id"].as_str().unwrap().to_string();
    assert_eq!(lease["evals"][0]["sampling"]["temperature"], 0.6);

    let url = format!("/api/v1/evals/{eval_id}/samples");
    let first = json!({ "worker_id": w, "samples": [sample(0, 0, true), sample(0, 1, false), sample(1, 0, false)] });
    assert_eq!(api.post(&url, &t, first.clone()).await.0, StatusCode::OK);
    assert_eq!(
        api.post(&url, &t, first).await.0,
        StatusCode::OK,
        "a retried upload"
    );
    let mut leaked = sample(2, 0, false);
    leaked["prompt"] = json!(format!("Q: {train_text}?"));
    api.post(&url, &t, json!({ "worker_id": w, "samples": [leaked] }))
        .await;
    api.post(
        &url,
        &t,
        json!({ "worker_id": w, "samples": [sample(1, 1, false)] }),
    )
    .await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM eval_samples")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 5, "no duplicates");
    assert_error(
        api.post(
            &url,
            &t,
            json!({ "worker_id": w, "samples": [sample(0, 5, true)] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("samples[0]"),
    );
    let stranger = worker(&api, &t, json!(["cpu"]), 8.0).await;
    assert_error(
        api.post(
            &url,
            &t,
            json!({ "worker_id": stranger, "samples": [sample(0, 0, true)] }),
        )
        .await,
        StatusCode::CONFLICT,
        Some("worker_id"),
    );

    let (_, mixed) = api.get(&format!("{url}?filter=mixed")).await;
    assert_eq!(mixed.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            mixed[0]["problem_idx"].as_i64(),
            mixed[0]["correct"].as_i64()
        ),
        (Some(0), Some(1))
    );
    let (_, wrong) = api.get(&format!("{url}?filter=all_wrong")).await;
    assert_eq!(wrong[0]["problem_idx"], 1);
    assert_eq!(wrong[0]["samples"].as_array().unwrap().len(), 2);

    let scores = json!({ "worker_id": w, "problems": 2, "scores": [
        { "metric": "pass@1", "value": 0.25, "ci_low": 0.0, "ci_high": 0.5, "n": 2 },
        { "metric": "pass@2", "value": 0.5, "ci_low": 0.0, "ci_high": 1.0, "n": 2 }] });
    let (s, e) = api
        .post(&format!("/api/v1/evals/{eval_id}/scores"), &t, scores)
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(
        (
            e["status"].as_str(),
            e["contamination"]["overlapping"].as_i64()
        ),
        (Some("finished"), Some(1))
    );
    let (_, done) = api
        .post(
            &format!("/api/v1/jobs/{}/complete", job["id"].as_str().unwrap()),
            &t,
            json!({ "worker_id": w }),
        )
        .await;
    assert_eq!(done["status"], "succeeded");

    let (_, board) = api.get("/api/v1/leaderboard").await;
    assert_eq!(board.as_array().unwrap().len(), 1);
    let row = &board[0];
    assert_eq!(
        (
            row["model_name"].as_str(),
            row["benchmark"].as_str(),
            row["score"].as_f64()
        ),
        (Some("tiny"), Some("gsm8k"), Some(0.25))
    );
    assert_eq!(
        (
            row["ci_high"].as_f64(),
            row["n_samples"].as_i64(),
            row["contaminated"].as_bool()
        ),
        (Some(0.5), Some(2), Some(true))
    );
}
