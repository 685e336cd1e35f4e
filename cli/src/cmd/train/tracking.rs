//! A metrics sink that streams training metrics to Crucible's tracking API, so a run's loss curve
//! shows live in the dashboard: `POST /api/v1/runs` creates the run (in a project found or
//! created by name), `POST /api/v1/runs/{id}/metrics` carries batches of points, and
//! `PATCH /api/v1/runs/{id}` marks it finished or failed.

use anyhow::{Context, bail};
use crucible_worker::train::{MetricsSink, TrainConfig};
use serde_json::{Value, json};

/// Points buffered before a POST (steps take about a second, so this is a few seconds' worth).
const FLUSH_EVERY: usize = 64;

/// An authenticated client of one server.
pub struct Tracking {
    server: String,
    token: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Tracking {
    /// A client of `server` (e.g. `http://localhost:8080`) using API token `token`.
    pub fn new(server: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            server: server.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}/api/v1{path}", self.server);
        self.runtime.block_on(async {
            let mut req = self.http.request(method, &url).bearer_auth(&self.token);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req
                .send()
                .await
                .with_context(|| format!("request to {url}"))?;
            let status = resp.status().as_u16();
            let text = resp.text().await?;
            Ok((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        })
    }

    /// The id of project `name`, creating it when it does not exist.
    pub fn project(&self, name: &str) -> anyhow::Result<String> {
        let (status, body) = self.send(
            reqwest::Method::POST,
            "/projects",
            Some(&json!({"name": name})),
        )?;
        match status {
            200 | 201 => return id_of(&body),
            409 => {}
            _ => bail!("creating project {name:?}: HTTP {status}: {body}"),
        }
        let (status, body) = self.send(reqwest::Method::GET, "/projects", None)?;
        if status != 200 {
            bail!("listing projects: HTTP {status}: {body}");
        }
        body.as_array()
            .and_then(|all| all.iter().find(|p| p["name"] == name))
            .map(id_of)
            .unwrap_or_else(|| bail!("project {name:?} exists but is not listed"))
    }

    /// Creates a running run for `config` in `project_id` and returns its id.
    pub fn create_run(
        &self,
        project_id: &str,
        name: &str,
        config: &TrainConfig,
    ) -> anyhow::Result<String> {
        let params = json!({
            "steps": config.steps,
            "lr": config.optimizer.lr,
            "beta1": config.optimizer.beta1,
            "beta2": config.optimizer.beta2,
            "weight_decay": config.optimizer.weight_decay,
            "seq_len": config.seq_len,
            "micro_batch": config.micro_batch,
            "grad_accum": config.grad_accum,
            "grad_clip": config.grad_clip,
            "mtp_weight": config.mtp_weight(),
            "seed": config.seed,
        });
        self.create_run_of(
            project_id,
            name,
            config.kind.as_str(),
            params,
            serde_json::to_value(config)?,
        )
    }

    /// Creates a running run of `kind` with flat `params` and the full `config`.
    pub fn create_run_of(
        &self,
        project_id: &str,
        name: &str,
        kind: &str,
        params: Value,
        config: Value,
    ) -> anyhow::Result<String> {
        let body = json!({
            "project_id": project_id,
            "name": name,
            "kind": kind,
            "params": params,
            "config": config,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
        });
        let (status, body) = self.send(reqwest::Method::POST, "/runs", Some(&body))?;
        if !(200..300).contains(&status) {
            bail!("creating run {name:?}: HTTP {status}: {body}");
        }
        id_of(&body)
    }

    /// Posts `body` to `path` under `/api/v1`; a refusal is an error.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, reply) = self.send(reqwest::Method::POST, path, Some(body))?;
        if !(200..300).contains(&status) {
            bail!("POST {path}: HTTP {status}: {reply}");
        }
        Ok(reply)
    }

    /// Marks a run `finished` or `failed`.
    pub fn set_status(&self, run_id: &str, status: &str) -> anyhow::Result<()> {
        let (code, body) = self.send(
            reqwest::Method::PATCH,
            &format!("/runs/{run_id}"),
            Some(&json!({"status": status})),
        )?;
        if !(200..300).contains(&code) {
            bail!("setting run {run_id} to {status}: HTTP {code}: {body}");
        }
        Ok(())
    }

    /// A sink that posts to run `run_id` under `train/<key>`.
    pub fn sink(&self, run_id: &str) -> TrackingSink<'_> {
        self.sink_with_prefix(run_id, "train/")
    }

    /// A sink that posts to run `run_id` under `<prefix><key>`.
    pub fn sink_with_prefix(&self, run_id: &str, prefix: &'static str) -> TrackingSink<'_> {
        TrackingSink {
            tracking: self,
            run_id: run_id.to_string(),
            prefix,
            buffer: Vec::new(),
        }
    }
}

fn id_of(body: &Value) -> anyhow::Result<String> {
    body["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("response has no id: {body}"))
}

/// Buffers points and posts them in batches; a failed post is logged, never fatal.
pub struct TrackingSink<'a> {
    tracking: &'a Tracking,
    run_id: String,
    prefix: &'static str,
    buffer: Vec<Value>,
}

impl TrackingSink<'_> {
    /// Posts what is buffered.
    pub fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let body = json!({ "points": std::mem::take(&mut self.buffer) });
        let path = format!("/runs/{}/metrics", self.run_id);
        match self
            .tracking
            .send(reqwest::Method::POST, &path, Some(&body))
        {
            Ok((200..=299, _)) => {}
            Ok((status, body)) => tracing::warn!(status, %body, "metrics were not accepted"),
            Err(e) => tracing::warn!(error = %e, "could not post metrics"),
        }
    }
}

impl MetricsSink for TrackingSink<'_> {
    fn record(&mut self, step: u64, values: &[(&str, f64)]) {
        let prefix = self.prefix;
        self.buffer.extend(
            values
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, v)| json!({"key": format!("{prefix}{k}"), "step": step, "value": v})),
        );
        if self.buffer.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
}

impl Drop for TrackingSink<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
