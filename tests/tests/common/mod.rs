//! Helpers shared by the integration tests: an in-process client for the real router over the
//! test's own Postgres database, and tokens for test teams.

#![allow(dead_code)] // each test binary uses a different subset

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

/// The router under test plus its pool.
pub struct Api {
    pub app: Router,
    pub pool: PgPool,
    /// Who `get` and `html` read as (reads are team-private): a token and a dashboard session.
    reader: std::sync::Mutex<Option<(String, String)>>,
}

impl Api {
    /// The real application over `pool`.
    pub fn new(pool: PgPool) -> Self {
        let app = crucible_server::app(crucible_server::state(pool.clone()).unwrap());
        Api {
            app,
            pool,
            reader: std::sync::Mutex::new(None),
        }
    }

    /// The real application on a deployment that opened reads (`CRUCIBLE_OPEN_READS=1`).
    pub fn with_open_reads(pool: PgPool) -> Self {
        let mut state = crucible_server::state(pool.clone()).unwrap();
        state.open_reads = true;
        Api {
            app: crucible_server::app(state),
            pool,
            reader: std::sync::Mutex::new(None),
        }
    }

    /// Makes `get` read with `token` and `html` with a dashboard session of its team.
    pub async fn read_as(&self, token: &str) {
        let session = crucible_server::store::sessions::sign_in(&self.pool, token)
            .await
            .unwrap();
        *self.reader.lock().unwrap() = Some((token.to_string(), session));
    }

    fn reader(&self) -> Option<(String, String)> {
        self.reader.lock().unwrap().clone()
    }

    /// Sends a request and returns the status and the JSON body (Null when empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let raw = body.map(|b| b.to_string());
        self.raw(method, path, token, raw, "application/json").await
    }

    /// Like `call`, with a raw body and content type (JSONL/NDJSON uploads).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        // A browser sends its session cookie with every request (the dashboard's server functions).
        if let Some((_, session)) = self.reader() {
            req = req.header("cookie", format!("crucible_session={session}"));
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GETs a dashboard page as the reader's session: the status and the HTML.
    pub async fn html(&self, path: &str) -> (StatusCode, String) {
        let mut req = Request::builder().uri(path);
        if let Some((_, session)) = self.reader() {
            req = req.header("cookie", format!("crucible_session={session}"));
        }
        let req = req.body(Body::empty()).unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// GETs as the reader (see [`Api::read_as`]), or without a token.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let token = self.reader().map(|(t, _)| t);
        self.call(Method::GET, path, token.as_deref(), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a project and returns its id.
    pub async fn project(&self, token: &str, name: &str) -> String {
        let (s, p) = self
            .post(
                "/api/v1/projects",
                token,
                serde_json::json!({ "name": name }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        p["id"].as_str().unwrap().to_string()
    }

    /// Registers a local model (a folder with a MiMo `config.json`) and returns its id.
    pub async fn local_model(&self, token: &str, name: &str, training: Value) -> String {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(
            dir.join("config.json"),
            r#"{"architectures":["MiMoForCausalLM"]}"#,
        )
        .unwrap();
        let body = serde_json::json!({ "name": name, "source": { "kind": "hf_local", "path": dir }, "training_datasets": training });
        let (s, m) = self.post("/api/v1/models", token, body).await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        m["id"].as_str().unwrap().to_string()
    }

    /// Creates a run in `project` and returns its JSON.
    pub async fn run(&self, token: &str, project: &str, extra: Value) -> Value {
        let mut body = serde_json::json!({ "project_id": project });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (s, r) = self.post("/api/v1/runs", token, body).await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        r
    }
}

/// A fresh token of team `name` (created if new).
pub async fn token(pool: &PgPool, name: &str) -> String {
    let mut tx = pool.begin().await.unwrap();
    let team = crucible_server::store::teams::ensure_team(&mut tx, name)
        .await
        .unwrap();
    let t = crucible_server::store::teams::create_token(&mut tx, team, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    t
}

/// A one-time dashboard sign-in code for `token`, as `crucible up` prints it.
pub async fn sign_in_code(pool: &PgPool, token: &str) -> String {
    let mut conn = pool.acquire().await.unwrap();
    crucible_server::store::sessions::create_link(&mut conn, token)
        .await
        .unwrap()
}

/// Asserts an API error: status, and the field it names.
#[track_caller]
pub fn assert_error(got: (StatusCode, Value), status: StatusCode, field: Option<&str>) {
    assert_eq!(got.0, status, "body: {}", got.1);
    let err = &got.1["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error body lacks a message: {}",
        got.1
    );
    if let Some(f) = field {
        assert_eq!(err["field"], f, "body: {}", got.1);
    }
}
