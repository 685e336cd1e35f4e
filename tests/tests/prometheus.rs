//! The server's `GET /metrics`: a valid OpenMetrics page (read by Prometheus's own parser) whose
//! counters move with the requests made, labelled by route template, never by raw path.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Api, token};
use crucible_types::testing::{MetricSample, parse_openmetrics, prometheus_python, sample_value};
use serde_json::json;
use sqlx::PgPool;
use std::ffi::OsString;
use tower::ServiceExt;

/// Scrapes `/metrics` (no token: Prometheus sends none) and parses the page.
async fn scrape(api: &Api, python: &OsString) -> Vec<MetricSample> {
    let res = api
        .app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let page = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    parse_openmetrics(python, std::str::from_utf8(&page).unwrap())
}

fn requests(samples: &[MetricSample], method: &str, route: &str, status: &str) -> f64 {
    let labels = [("method", method), ("route", route), ("status", status)];
    sample_value(samples, "crucible_http_requests_total", &labels).unwrap_or(0.0)
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn metrics_page_counts_requests_points_jobs_workers_and_streams(pool: PgPool) {
    let Some(python) =
        prometheus_python("metrics_page_counts_requests_points_jobs_workers_and_streams")
    else {
        return;
    };
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    let before = scrape(&api, &python).await;
    assert_eq!(
        sample_value(&before, "crucible_metric_points_ingested_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample_value(&before, "crucible_workers_online", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample_value(&before, "crucible_sse_subscribers", &[]),
        Some(0.0)
    );

    // Points through the REST API and through MLflow's log-batch both count, once committed.
    let project = api.project(&t, "p").await;
    let run = api.run(&t, &project, json!({})).await;
    let run_id = run["id"].as_str().unwrap();
    let points: Vec<_> = (0..3)
        .map(|step| json!({ "key": "loss", "step": step, "value": 1.0 / f64::from(step + 1) }))
        .collect();
    let metrics_path = format!("/api/v1/runs/{run_id}/metrics");
    let (s, body) = api
        .post(&metrics_path, &t, json!({ "points": points }))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = api
        .post(
            "/api/2.0/mlflow/runs/log-batch",
            &t,
            json!({ "run_id": run_id, "metrics": [
                { "key": "acc", "value": 0.5, "timestamp": 1, "step": 0 },
                { "key": "acc", "value": 0.6, "timestamp": 2, "step": 1 }] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // A refused batch (a NaN is not a number in JSON) changes nothing and counts as a 4xx.
    let (s, _) = api
        .raw(
            Method::POST,
            &metrics_path,
            Some(&t),
            Some(r#"{"points":[{"key":"loss","step":9,"value":"x"}]}"#.into()),
            "application/json",
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Another run's id and a path no route knows.
    let unknown = uuid::Uuid::new_v4();
    let (s, _) = api.get(&format!("/api/v1/runs/{unknown}")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "no token");
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/v1/runs/{unknown}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A worker online and a queued job.
    let worker = json!({ "name": "w", "capabilities": { "devices": ["cpu"], "memory_gb": 8.0, "kinds": ["generate"] } });
    let (s, body) = api.post("/api/v1/workers", &t, worker).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let model = api.local_model(&t, "tiny", json!([])).await;
    let job = json!({ "spec": { "kind": "generate", "model_id": model, "prompts": ["hi"] } });
    let (s, body) = api.post("/api/v1/jobs", &t, job).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // A live-update stream held open.
    let stream = api
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/events")
                .header("authorization", format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    let after = scrape(&api, &python).await;
    assert_eq!(
        sample_value(&after, "crucible_metric_points_ingested_total", &[]),
        Some(5.0),
        "3 REST points and 2 MLflow points; the refused batch counts none"
    );
    let route = "/api/v1/runs/{id}/metrics";
    assert_eq!(requests(&after, "POST", route, "200"), 1.0);
    assert_eq!(requests(&after, "POST", route, "422"), 1.0);
    assert_eq!(requests(&after, "GET", "/api/v1/runs/{id}", "401"), 1.0);
    assert_eq!(requests(&after, "GET", "/api/v1/runs/{id}", "404"), 1.0);
    assert_eq!(
        requests(&after, "POST", "/api/2.0/mlflow/runs/log-batch", "200"),
        1.0
    );
    assert_eq!(
        requests(&after, "GET", "/metrics", "200"),
        1.0,
        "the first scrape"
    );
    assert!(
        after.iter().all(|s| !s
            .labels
            .get("route")
            .is_some_and(|r| r.contains(run_id) || r.contains(&unknown.to_string()))),
        "an id never becomes a label"
    );
    // The latency histogram saw both POSTs to the metrics route.
    let latency = [("method", "POST"), ("route", route)];
    assert_eq!(
        sample_value(
            &after,
            "crucible_http_request_duration_seconds_count",
            &latency
        ),
        Some(2.0)
    );
    let slowest = [("method", "POST"), ("route", route), ("le", "+Inf")];
    assert_eq!(
        sample_value(
            &after,
            "crucible_http_request_duration_seconds_bucket",
            &slowest
        ),
        Some(2.0)
    );
    assert_eq!(
        sample_value(&after, "crucible_workers_online", &[]),
        Some(1.0)
    );
    let queued = [("status", "queued"), ("kind", "generate")];
    assert_eq!(sample_value(&after, "crucible_jobs", &queued), Some(1.0));
    assert_eq!(
        sample_value(&after, "crucible_sse_subscribers", &[]),
        Some(1.0)
    );

    drop(stream);
    let closed = scrape(&api, &python).await;
    assert_eq!(
        sample_value(&closed, "crucible_sse_subscribers", &[]),
        Some(0.0)
    );
    assert_eq!(requests(&closed, "GET", "/metrics", "200"), 2.0);
}

/// A path no route matches is counted under one label, whatever was asked: a scanner walking
/// random paths cannot grow the page.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn unmatched_paths_share_one_label(pool: PgPool) {
    let Some(python) = prometheus_python("unmatched_paths_share_one_label") else {
        return;
    };
    let api = Api::new(pool);
    for path in ["/api/v1/nope", "/api/v1/also-nope/123"] {
        let (s, _) = api.get(path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let page = scrape(&api, &python).await;
    let unmatched: f64 = page
        .iter()
        .filter(|s| {
            s.name == "crucible_http_requests_total"
                && s.labels.get("route").map(String::as_str) == Some("unmatched")
        })
        .map(|s| s.value)
        .sum();
    assert_eq!(unmatched, 2.0);
    assert!(
        page.iter()
            .all(|s| !s.labels.get("route").is_some_and(|r| r.contains("nope"))),
        "a raw path never becomes a label"
    );
}
