//! The CLI's connection to a running server: where it is, the token, and JSON calls that turn the
//! server's error body into a readable message.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Server address and token, shared by every subcommand that talks to a server.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Crucible server URL.
    #[arg(long, env = "CRUCIBLE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Team API token (`crucible token create`).
    #[arg(long, env = "CRUCIBLE_TOKEN")]
    pub token: Option<String>,
}

impl ServerArgs {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.server.trim_end_matches('/'))
    }

    fn token(&self) -> Result<&str> {
        self.token
            .as_deref()
            .context("this command writes to the server: pass --token or set CRUCIBLE_TOKEN")
    }

    async fn finish<T: DeserializeOwned>(what: &str, r: reqwest::Response) -> Result<T> {
        let status = r.status();
        let text = r
            .text()
            .await
            .with_context(|| format!("{what}: no reply body"))?;
        if !status.is_success() {
            let detail = serde_json::from_str::<crucible_types::ApiError>(&text)
                .map(|e| match e.error.field {
                    Some(f) => format!("{} (field `{f}`)", e.error.message),
                    None => e.error.message,
                })
                .unwrap_or(text);
            bail!("{what} failed: HTTP {status}: {detail}");
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: unexpected reply"))
    }

    /// GET a JSON resource.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let r = reqwest::Client::new()
            .get(self.url(path))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.server))?;
        Self::finish(path, r).await
    }

    /// POST JSON with the token.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let r = reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(self.token()?)
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.server))?;
        Self::finish(path, r).await
    }

    /// POST a raw body with the token and query parameters.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: String,
        content_type: &str,
    ) -> Result<T> {
        let r = reqwest::Client::new()
            .post(self.url(path))
            .query(query)
            .bearer_auth(self.token()?)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.server))?;
        Self::finish(path, r).await
    }
}
