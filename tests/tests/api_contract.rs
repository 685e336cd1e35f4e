//! The OpenAPI document against the server itself: schemathesis (pinned, from PyPI) generates
//! requests from `/api/v1/openapi.json`, valid and invalid, sends them to a live server and
//! checks every answer against the document (`--checks all`): no 5xx, no undeclared status, no
//! response outside its schema, no valid request refused, no invalid one accepted, no read
//! without credentials. The test command installs schemathesis and sets `CRUCIBLE_SCHEMATHESIS`
//! (and, in CI, `CRUCIBLE_REQUIRE_SCHEMATHESIS`, so that a missing tool fails instead of skipping).

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, assert_error, token};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The settings of the run (seed, timeouts, examples per operation), beside this crate.
const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schemathesis/schemathesis.toml"
);
/// The NDJSON encoding and the rules across fields that no schema states (see the file).
const HOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis/hooks.py");

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn schemathesis_finds_the_server_as_its_document_says(pool: PgPool) {
    let test = "schemathesis_finds_the_server_as_its_document_says";
    let Some(schemathesis) = crucible_types::testing::optional_input(
        "CRUCIBLE_SCHEMATHESIS",
        "CRUCIBLE_REQUIRE_SCHEMATHESIS",
        test,
    ) else {
        return;
    };
    let token = token(&pool, "fuzz").await;
    let ids = seed_objects(&pool, &token).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crucible_server::serve(listener, pool.clone()));

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = tokio::process::Command::new(schemathesis)
        .args(["--config-file", CONFIG, "run"])
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", &base, "--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", HOOKS)
        .envs(ids)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("cannot run schemathesis");
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(&report).unwrap_or_else(|e| panic!("no report ({e}):\n{output}")),
    )
    .unwrap();

    let operations = &report["operations"];
    assert!(
        operations["total"].as_u64().unwrap() >= 39,
        "the document lists every operation: {operations}"
    );
    assert_eq!(
        operations["tested"], operations["total"],
        "every operation is fuzzed: {operations}\n{output}"
    );
    assert_eq!(report["failures"], Value::Array(vec![]), "{output}");
    assert_eq!(report["errors"], Value::Array(vec![]), "{output}");
    assert_eq!(report["phases"]["fuzzing"]["status"], "success", "{output}");
    let warnings = &report["warnings"];
    for quiet in [
        "missing_auth",
        "validation_mismatch",
        "unresolvable_reference",
        "low_valid_rate",
    ] {
        assert_eq!(warnings[quiet], json!([]), "{quiet}: {warnings}");
    }
    // Every `{id}` operation reached a real object; only a tag of a random key and an artifact
    // at a random path stay not found.
    let unreached = warnings["missing_test_data"].as_array().unwrap();
    assert!(
        unreached.iter().all(|op| op
            .as_str()
            .is_some_and(|o| o.ends_with("/tags/{key}") || o.ends_with("/artifacts/{path}"))),
        "{warnings}"
    );
    assert!(out.status.success(), "{output}");
}

/// One object of each kind the `{id}` operations read, as the `CRUCIBLE_FUZZ_*` variables the
/// schemathesis settings name: with them those operations answer with real objects, which are
/// then checked against their schemas, instead of only "not found".
async fn seed_objects(pool: &PgPool, token: &str) -> Vec<(String, String)> {
    let api = Api::new(pool.clone());
    api.read_as(token).await;
    let id = |v: &Value| v["id"].as_str().expect("an id").to_string();
    let project = api.project(token, "fuzz").await;
    let run = id(&api.run(token, &project, json!({ "name": "seeded" })).await);
    let (s, logged) = api
        .post(
            &format!("/api/v1/runs/{run}/metrics"),
            token,
            json!({ "points": [{ "key": "loss", "step": 0, "value": 1.0 }] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{logged}");
    let model = api.local_model(token, "seeded", json!([])).await;
    let (s, imported) = api
        .raw(
            Method::POST,
            "/api/v1/datasets/import?name=seeded&kind=math",
            Some(token),
            Some("{\"problem\": \"1+1?\", \"answer\": \"2\"}\n".into()),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{imported}");
    let eval_job =
        json!({ "spec": { "kind": "eval", "model_id": model, "benchmarks": ["synthetic"] } });
    let (s, job) = api.post("/api/v1/jobs", token, eval_job).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let (_, evals) = api.get(&format!("/api/v1/evals?job_id={}", id(&job))).await;
    let worker = json!({ "name": "seeded", "capabilities": { "devices": ["cpu"], "memory_gb": 8, "kinds": ["eval"] } });
    let (s, worker) = api.post("/api/v1/workers", token, worker).await;
    assert_eq!(s, StatusCode::CREATED, "{worker}");
    [
        ("PROJECT", project),
        ("RUN", run),
        ("MODEL", model),
        ("DATASET", id(&imported["dataset"])),
        ("JOB", id(&job)),
        ("EVAL", id(&evals[0])),
        ("WORKER", id(&worker)),
    ]
    .into_iter()
    .map(|(kind, id)| (format!("CRUCIBLE_FUZZ_{kind}"), id))
    .collect()
}

/// Bodies are bounded: past the route's limit the answer is a 413 in the API's error format (not
/// axum's plain text), and nothing is stored; a route with a higher limit takes the same body.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_body_over_its_routes_limit_is_a_413_in_the_api_format(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let huge = json!({ "name": "p", "description": "x".repeat(3 << 20) });
    assert_error(
        api.post("/api/v1/projects", &t, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("body"),
    );
    let (_, projects) = api.get("/api/v1/projects").await;
    assert_eq!(projects, json!([]), "nothing was created");

    // 3 MiB of NDJSON points: over the default limit, well under the bulk route's.
    let project = api.project(&t, "big").await;
    let run = api.run(&t, &project, json!({})).await;
    let line = |step: usize| format!("{{\"key\":\"loss\",\"step\":{step},\"value\":0.5}}\n");
    let points = (3 << 20) / line(0).len() + 1;
    let body: String = (0..points).map(line).collect();
    let path = format!("/api/v1/runs/{}/metrics/bulk", run["id"].as_str().unwrap());
    let (status, logged) = api
        .raw(
            Method::POST,
            &path,
            Some(&t),
            Some(body),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{logged}");
    assert_eq!(logged["accepted"], points);
}

/// serde reads a JSON array into a struct field by field; the API takes only objects, so
/// `PATCH /runs/{id}` with `[]` is refused instead of changing nothing and answering 200.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_body_that_is_not_an_object_is_refused(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    let project = api.project(&t, "p").await;
    let run = api.run(&t, &project, json!({ "name": "before" })).await;
    let path = format!("/api/v1/runs/{}", run["id"].as_str().unwrap());
    for body in [json!([]), json!(["after"]), json!(null), json!("after")] {
        assert_error(
            api.call(Method::PATCH, &path, Some(&t), Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("body"),
        );
    }
}

/// A checkpoint of a run that does not exist (or is another team's) is not found, naming the
/// field; it used to reach the database's foreign key and answer 500.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_checkpoint_of_an_unknown_run_is_not_found(pool: PgPool) {
    let api = Api::new(pool.clone());
    let a = token(&pool, "alpha").await;
    let b = token(&pool, "beta").await;
    let project = api.project(&a, "p").await;
    let alphas = api.run(&a, &project, json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architectures":["MiMoForCausalLM"]}"#,
    )
    .unwrap();
    let checkpoint = |run: &Value| json!({ "name": "ckpt", "source": { "kind": "checkpoint", "path": dir.path(), "run_id": run, "step": 1 } });
    for (who, run) in [
        (&a, json!(uuid::Uuid::new_v4())),
        (&b, alphas["id"].clone()),
    ] {
        assert_error(
            api.post("/api/v1/models", who, checkpoint(&run)).await,
            StatusCode::NOT_FOUND,
            Some("source.run_id"),
        );
    }
    let (status, model) = api
        .post("/api/v1/models", &a, checkpoint(&alphas["id"]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
}

/// What schemathesis found the server doing apart from its document, each checked directly: an
/// enum tag given as a number, an integer spelled `2.0`, a float off by one unit, an empty bulk
/// upload, and a bad page hidden behind another team's empty listing.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn the_edges_schemathesis_found_stay_fixed(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let model = api.local_model(&t, "m", json!([])).await;
    let numeric_kind =
        json!({ "spec": { "kind": 0, "model_id": model, "benchmarks": ["synthetic"] } });
    assert_error(
        api.post("/api/v1/jobs", &t, numeric_kind).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("spec.kind"),
    );

    let project = api.project(&t, "p").await;
    let run = api.run(&t, &project, json!({})).await;
    let run = run["id"].as_str().unwrap();
    let below_one = 0.999_999_999_999_999_9_f64;
    let points = json!({ "points": [{ "key": "x", "step": 3.0, "value": below_one }] });
    let (s, logged) = api
        .post(&format!("/api/v1/runs/{run}/metrics"), &t, points)
        .await;
    assert_eq!(s, StatusCode::OK, "{logged}");
    let (_, history) = api
        .get(&format!("/api/v1/runs/{run}/metrics/history?key=x"))
        .await;
    assert_eq!(history["steps"], json!([3]));
    assert_eq!(history["values"][0].as_f64(), Some(below_one));

    let (s, empty) = api
        .raw(
            Method::POST,
            &format!("/api/v1/runs/{run}/metrics/bulk"),
            Some(&t),
            Some("\n\n".into()),
            "application/x-ndjson",
        )
        .await;
    assert_error((s, empty), StatusCode::UNPROCESSABLE_ENTITY, Some("body"));

    let other_team = uuid::Uuid::new_v4();
    for listing in ["jobs", "runs"] {
        assert_error(
            api.get(&format!("/api/v1/{listing}?team_id={other_team}&limit=0"))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("limit"),
        );
    }
}
