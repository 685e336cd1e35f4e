//! Secrets never reach the server's log: a sign-in code travels in a query string and a token in
//! a form body, and neither appears in what the server logs at any level.

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, token};
use sqlx::PgPool;

/// Everything the server logs, at every level, into memory.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn sign_in_codes_and_tokens_never_reach_the_log(pool: PgPool) {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The process's one subscriber (this binary holds this test alone): a thread-local default
    // races with tracing's per-callsite interest cache.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    let code = common::sign_in_code(&pool, &t).await;
    let (s, _) = api.get(&format!("/auth/link?code={code}")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    api.raw(
        Method::POST,
        "/auth/signin",
        None,
        Some(format!("token={t}")),
        "application/x-www-form-urlencoded",
    )
    .await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("/auth/link"),
        "the requests were not logged: {text}"
    );
    assert!(
        !text.contains(&code),
        "the sign-in code is in the log:\n{text}"
    );
    assert!(!text.contains(&t), "the token is in the log:\n{text}");
}
