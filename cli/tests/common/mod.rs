//! Helpers shared by the end-to-end tests: JSON calls to a live server as a team.
#![allow(dead_code)] // each test binary uses a different subset

use serde_json::Value;

/// POSTs `body` to `url` as the team of `token`; the call must succeed.
pub async fn post_json(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

/// GETs `url` as the team of `token` (reads are private to a team) and returns its JSON.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
