//! The MLflow-compatible subset: over raw REST, and driven by the real `mlflow` Python client.

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, token};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn mlflow_rest_calls_land_in_api_v1(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let ml = |p: &str| format!("/api/2.0/mlflow/{p}");
    let (s, e) = api
        .post(
            &ml("experiments/create"),
            &t,
            json!({ "name": "sft-sweep" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let exp = e["experiment_id"].as_str().unwrap().to_string();
    let (s, dup) = api
        .post(
            &ml("experiments/create"),
            &t,
            json!({ "name": "sft-sweep" }),
        )
        .await;
    assert_eq!(
        (s, dup["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS"))
    );
    let (s, missing) = api
        .call(
            Method::GET,
            &ml("experiments/get-by-name?experiment_name=nope"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(
        (s, missing["error_code"].as_str()),
        (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (_, got) = api
        .call(
            Method::GET,
            &ml("experiments/get-by-name?experiment_name=sft-sweep"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(got["experiment"]["experiment_id"], exp.as_str());

    let mut ids = Vec::new();
    for lr in ["0.1", "0.01"] {
        let (_, r) = api.post(&ml("runs/create"), &t, json!({ "experiment_id": exp, "run_name": format!("lr-{lr}"),
            "start_time": 1_700_000_000_000i64, "tags": [{ "key": "mlflow.user", "value": "ana" }] })).await;
        let id = r["run"]["info"]["run_id"].as_str().unwrap().to_string();
        let batch = json!({ "run_id": id, "params": [{ "key": "lr", "value": lr }], "tags": [{ "key": "stage", "value": "sft" }],
            "metrics": [{ "key": "loss", "value": 2.0, "timestamp": 1_700_000_000_000i64, "step": 0 },
                        { "key": "loss", "value": if lr == "0.1" { 0.5 } else { 1.5 }, "timestamp": 1_700_000_001_000i64, "step": 1 }] });
        let (s, b) = api.post(&ml("runs/log-batch"), &t, batch).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        ids.push(id);
    }
    let (s, _) = api
        .post(
            &ml("runs/log-metric"),
            &t,
            json!({ "run_id": ids[0], "key": "acc", "value": 0.9, "timestamp": 1, "step": 3 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    api.post(
        &ml("runs/log-parameter"),
        &t,
        json!({ "run_id": ids[0], "key": "seed", "value": "1" }),
    )
    .await;
    api.post(
        &ml("runs/set-tag"),
        &t,
        json!({ "run_id": ids[0], "key": "note", "value": "best" }),
    )
    .await;
    let (s, changed) = api
        .post(
            &ml("runs/log-parameter"),
            &t,
            json!({ "run_id": ids[0], "key": "lr", "value": "9" }),
        )
        .await;
    assert_eq!(
        (s, changed["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("RESOURCE_ALREADY_EXISTS"))
    );
    let (_, u) = api
        .post(
            &ml("runs/update"),
            &t,
            json!({ "run_id": ids[0], "status": "FINISHED", "end_time": 1 }),
        )
        .await;
    assert_eq!(u["run_info"]["status"], "FINISHED");

    let (_, h) = api
        .call(
            Method::GET,
            &ml(&format!(
                "metrics/get-history?run_id={}&metric_key=loss",
                ids[0]
            )),
            Some(&t),
            None,
        )
        .await;
    let steps: Vec<i64> = h["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, [0, 1]);
    assert_eq!(h["metrics"][0]["timestamp"], 1_700_000_000_000i64);

    let search =
        |filter: &str| json!({ "experiment_ids": [exp], "filter": filter, "max_results": 10 });
    let (_, found) = api
        .post(
            &ml("runs/search"),
            &t,
            search("params.lr = '0.1' and tags.stage = 'sft'"),
        )
        .await;
    assert_eq!(found["runs"].as_array().unwrap().len(), 1);
    assert_eq!(found["runs"][0]["info"]["run_name"], "lr-0.1");
    let (_, found) = api
        .post(&ml("runs/search"), &t, search("metrics.loss < 1"))
        .await;
    assert_eq!(found["runs"][0]["info"]["run_id"], ids[0].as_str());
    let (_, found) = api
        .post(
            &ml("runs/search"),
            &t,
            search("attributes.status = 'RUNNING'"),
        )
        .await;
    assert_eq!(found["runs"][0]["info"]["run_id"], ids[1].as_str());
    let (s, bad) = api.post(&ml("runs/search"), &t, search("loss < 1")).await;
    assert_eq!(
        (s, bad["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE"))
    );

    let (_, run) = api.get(&format!("/api/v1/runs/{}", ids[0])).await;
    assert_eq!(
        (
            run["name"].as_str(),
            run["status"].as_str(),
            run["kind"].as_str()
        ),
        (Some("lr-0.1"), Some("finished"), Some("external"))
    );
    assert_eq!(run["params"], json!({ "lr": "0.1", "seed": "1" }));
    assert_eq!(run["tags"]["note"], "best");
    let other = token(&pool, "beta").await;
    let (s, _) = api
        .post(
            &ml("runs/log-metric"),
            &other,
            json!({ "run_id": ids[0], "key": "x", "value": 1, "timestamp": 1, "step": 0 }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Runs `tests/mlflow_client.py` with the real `mlflow` client against a live server. The test
/// command installs the client into a virtualenv and sets `CRUCIBLE_MLFLOW_PYTHON`; without it
/// (no PyPI) the test says so loudly and skips.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn real_mlflow_client_logs_a_run(pool: PgPool) {
    // Unset when the mlflow client could not be installed from PyPI.
    let Some(python) = crucible_types::testing::optional_input(
        "CRUCIBLE_MLFLOW_PYTHON",
        "CRUCIBLE_REQUIRE_MLFLOW",
        "real_mlflow_client_logs_a_run",
    ) else {
        return;
    };
    let t = token(&pool, "alpha").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crucible_server::serve(listener, pool.clone()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/mlflow_client.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("MLFLOW_TRACKING_URI", format!("http://{addr}"))
        .env("MLFLOW_TRACKING_TOKEN", &t)
        .output()
        .await
        .expect("cannot run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mlflow client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = stdout.lines().last().unwrap().trim();

    let api = Api::new(pool.clone());
    api.read_as(&t).await;
    let (s, run) = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "finished");
    assert_eq!(run["params"]["learning_rate"], "0.001");
    assert_eq!(run["tags"]["phase"], "sft");
    let (_, h) = api
        .get(&format!("/api/v1/runs/{run_id}/metrics/history?key=loss"))
        .await;
    assert_eq!(h["steps"], json!([0, 1, 2, 3, 4]));
    let (_, project) = api
        .get(&format!(
            "/api/v1/projects/{}",
            run["project_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(project["name"], "crucible-mlflow-test");
}

/// `metrics/get-history-bulk-interval` (MLflow's chart endpoint) samples several runs to common
/// steps, refuses what MLflow refuses with MLflow's error codes, and never shows another team's run.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn bulk_interval_history_is_sampled_checked_and_private(pool: PgPool) {
    let api = Api::new(pool.clone());
    let alpha = token(&pool, "alpha").await;
    let beta = token(&pool, "beta").await;
    let project = api.project(&alpha, "p").await;
    let mut ids = Vec::new();
    for steps in [5, 40] {
        let run = api.run(&alpha, &project, json!({})).await;
        let id = run["id"].as_str().unwrap().to_string();
        let points: Vec<_> = (0..steps)
            .map(|s| json!({ "key": "loss", "step": s, "value": f64::from(s) }))
            .collect();
        let (s, body) = api
            .post(
                &format!("/api/v1/runs/{id}/metrics"),
                &alpha,
                json!({ "points": points }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        ids.push(id);
    }
    let url = |extra: &str| {
        format!(
            "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={}&run_ids={}&metric_key=loss{extra}",
            ids[0], ids[1]
        )
    };
    let (s, body) = api
        .call(Method::GET, &url("&max_results=4"), Some(&alpha), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let steps_of = |run: &str| -> Vec<i64> {
        body["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["run_id"] == run)
            .map(|m| m["step"].as_i64().unwrap())
            .collect()
    };
    // 40 distinct steps thinned to 4 (0, 10, 20, 30) plus the last (39); each run's own ends.
    assert_eq!(steps_of(&ids[0]), vec![0, 4]);
    assert_eq!(steps_of(&ids[1]), vec![0, 4, 10, 20, 30, 39]);
    assert_eq!(body["metrics"][1]["value"], 4.0);

    for (extra, field) in [
        ("&max_results=0", "max_results"),
        ("&start_step=9", "end_step"),
        ("&start_step=9&end_step=2", "end_step"),
    ] {
        let (s, e) = api.call(Method::GET, &url(extra), Some(&alpha), None).await;
        assert_eq!(
            (s, e["error_code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("INVALID_PARAMETER_VALUE")),
            "{extra}: {e}"
        );
        assert!(e["message"].as_str().unwrap().contains(field), "{e}");
    }
    let (s, e) = api.call(Method::GET, &url(""), Some(&beta), None).await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (StatusCode::NOT_FOUND, Some("RESOURCE_DOES_NOT_EXIST")),
        "another team's runs do not exist for beta: {e}"
    );
}

/// MLflow's artifact proxy refuses paths that leave the run, uploads over the cap (leaving
/// nothing behind), and another team's run, in MLflow's error format.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn artifact_uploads_are_checked_bounded_and_private(pool: PgPool) {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let mut state = crucible_server::state(pool.clone()).unwrap();
    state.artifacts =
        std::sync::Arc::new(crucible_server::artifacts::Artifacts::open("memory://", 16).unwrap());
    let app = crucible_server::app(state);
    let api = Api::new(pool.clone());
    let alpha = token(&pool, "alpha").await;
    let beta = token(&pool, "beta").await;
    let project = api.project(&alpha, "p").await;
    let run = api.run(&alpha, &project, json!({})).await;
    let run_id = run["id"].as_str().unwrap();
    let call = |method: &str, path: String, who: &str, body: Vec<u8>| {
        let app = app.clone();
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/2.0/mlflow-artifacts/artifacts{path}"))
            .header("authorization", format!("Bearer {who}"))
            .body(Body::from(body))
            .unwrap();
        async move {
            let res = app.oneshot(request).await.unwrap();
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, bytes.to_vec())
        }
    };
    let json_of = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();

    let (s, _) = call(
        "PUT",
        format!("/{run_id}/artifacts/ok.txt"),
        &alpha,
        b"fits".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call("GET", format!("/{run_id}/artifacts/ok.txt"), &alpha, vec![]).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"fits"[..]));

    let (s, e) = call(
        "PUT",
        format!("/{run_id}/artifacts/big.bin"),
        &alpha,
        vec![7; 17],
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&e)["error_code"], "REQUEST_LIMIT_EXCEEDED");
    for bad in ["/../../etc/passwd", "/x/../y", "/a%23b"] {
        let (s, e) = call(
            "PUT",
            format!("/{run_id}/artifacts{bad}"),
            &alpha,
            b"x".to_vec(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            json_of(&e)["error_code"],
            "INVALID_PARAMETER_VALUE",
            "{bad}"
        );
    }
    // The native API lists and serves the same files, with a content type a browser shows.
    let native = |path: String, who: &str| {
        let app = app.clone();
        let request = Request::get(format!("/api/v1/runs/{run_id}/artifacts{path}"))
            .header("authorization", format!("Bearer {who}"))
            .body(Body::empty())
            .unwrap();
        async move {
            let res = app.oneshot(request).await.unwrap();
            let status = res.status();
            let kind = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, kind, bytes.to_vec())
        }
    };
    let (s, _, listed) = native(String::new(), &alpha).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json_of(&listed), json!([{ "path": "ok.txt", "size": 4 }]));
    let (s, kind, body) = native("/ok.txt".into(), &alpha).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"fits"[..]));
    assert_eq!(kind.as_deref(), Some("text/plain; charset=utf-8"));
    let (s, _, e) = native("/a%23b".into(), &alpha).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json_of(&e)["error"]["field"], "path");
    for path in ["", "/ok.txt"] {
        let (s, _, _) = native(path.into(), &beta).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "beta reads {path:?} of alpha's run"
        );
    }

    let (s, listing) = call("GET", format!("?path={run_id}/artifacts"), &alpha, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        json_of(&listing),
        json!({ "files": [{ "path": "ok.txt", "is_dir": false, "file_size": 4 }] }),
        "only the complete upload is listed"
    );

    for (method, path) in [
        ("GET", format!("/{run_id}/artifacts/ok.txt")),
        ("PUT", format!("/{run_id}/artifacts/theirs.txt")),
        ("GET", format!("?path={run_id}/artifacts")),
    ] {
        let (s, e) = call(method, path.clone(), &beta, b"x".to_vec()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(json_of(&e)["error_code"], "RESOURCE_DOES_NOT_EXIST");
    }
}
