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

/// A `crucible serve-model` process on a free port, killed when dropped.
pub struct ServedModel {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>` (the OpenAI routes are under `/v1`).
    pub base: String,
}

impl ServedModel {
    /// Serves the model folder `model` with `extra` arguments; waits until it listens.
    pub fn start(model: &str, extra: &[&str]) -> ServedModel {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_crucible"))
            .args([
                "serve-model",
                "--model",
                model,
                "--bind",
                "127.0.0.1:0",
                "--device",
                "cpu",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("cannot start `crucible serve-model`");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("serve-model printed nothing");
        let base = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.trim().strip_suffix("/v1"))
            .unwrap_or_else(|| panic!("serve-model did not say where it listens: {line:?}"));
        ServedModel {
            child,
            base: format!("http://{base}"),
        }
    }
}

impl Drop for ServedModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
