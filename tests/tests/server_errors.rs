//! Errors inside the server are logged once, with the request and their cause, on every face:
//! the REST API, the MLflow API and panicking handlers; the client sees only a plain 500.

mod common;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use common::{Api, token};
use crucible_server::error::AppError;
use sqlx::PgPool;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Log lines written while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Sends this thread's logs here until the guard drops.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The `request failed` lines.
    fn failures(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("request failed"))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_or_panicking_handler_is_logged_once_with_its_cause() {
    let logs = Captured::default();
    let _guard = logs.install();
    let app = crucible_server::with_error_layers(
        Router::new()
            .route(
                "/broken",
                get(|| async { Err::<(), _>(AppError::Db(sqlx::Error::PoolTimedOut)) }),
            )
            .route("/panics", get(|| async { panic!("handler bug") }))
            .route(
                "/refused",
                get(|| async { Err::<(), _>(AppError::invalid("name", "too long")) }),
            ),
    );
    let api = |path: &'static str| {
        let app = app.clone();
        async move {
            use tower::ServiceExt;
            let req = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let status = res.status();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, body) = api("/broken").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.contains("PoolTimedOut"), "the cause stays out of the body: {body}");
    assert_eq!(api("/panics").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(api("/refused").await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let failures = logs.failures();
    assert_eq!(failures.len(), 2, "one line per 5xx, none for the 422: {failures:#?}");
    assert!(
        failures[0].contains("/broken") && failures[0].contains("PoolTimedOut"),
        "{}",
        failures[0]
    );
    assert!(failures[1].contains("/panics"), "{}", failures[1]);
}

/// With the database gone, the REST and the MLflow faces both answer 500 and log why.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_database_outage_is_logged_on_the_rest_and_mlflow_faces(pool: PgPool) {
    let t = token(&pool, "alpha").await;
    let api = Api::new(pool.clone());
    let logs = Captured::default();
    let _guard = logs.install();
    pool.close().await;
    let (rest, _) = api.call(Method::GET, "/api/v1/projects", Some(&t), None).await;
    let (mlflow, body) = api
        .call(
            Method::GET,
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=x",
            Some(&t),
            None,
        )
        .await;
    assert_eq!((rest, mlflow), (StatusCode::INTERNAL_SERVER_ERROR, StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(body["error_code"], "INTERNAL_ERROR", "{body}");
    let failures = logs.failures();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(failures[0].contains("/api/v1/projects") && failures[0].contains("PoolClosed"), "{}", failures[0]);
    assert!(failures[1].contains("/api/2.0/mlflow/experiments/get-by-name") && failures[1].contains("PoolClosed"), "{}", failures[1]);
}
