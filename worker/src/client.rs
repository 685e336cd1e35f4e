//! The worker's HTTP client: every call the worker makes to the server, with retries for
//! transient failures. Uploads are idempotent on the server, so retrying a write is always safe.

use crucible_types::{
    CompleteJob, CompletionRecord, Dataset, DatasetRows, EvalScore, Heartbeat, HeartbeatReply,
    JobProgress, Lease, MetricPoint, Model, RegisterModel, RegisterWorker, SampleRecord,
    UploadSamples, UploadScores, Worker,
};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use uuid::Uuid;

/// Attempts per call before giving up on a transient failure.
const ATTEMPTS: u32 = 6;
/// First back-off; doubles per attempt (0.5, 1, 2, 4, 8 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request (4xx); retrying would not help.
    #[error("server refused {what}: {status}: {body}")]
    Refused {
        what: String,
        status: StatusCode,
        body: String,
    },
    /// The job's lease is gone (expired or taken over): stop working on it.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// The server could not be reached or kept failing.
    #[error("cannot reach the server for {what} after {ATTEMPTS} attempts: {last}")]
    Unreachable { what: String, last: String },
}

/// A connection to one Crucible server, acting for one team.
#[derive(Clone)]
pub struct ServerClient {
    base: String,
    token: String,
    http: Client,
}

impl ServerClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) with a team token.
    pub fn new(base: &str, token: &str) -> Self {
        let http = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default();
        ServerClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends with retries on connection errors and 5xx; maps 409 to `LeaseLost`.
    fn send(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match build().bearer_auth(&self.token).send() {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if r.status() == StatusCode::CONFLICT => {
                    return Err(ClientError::LeaseLost(r.text().unwrap_or_default()));
                }
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    return Err(ClientError::Refused {
                        what: what.into(),
                        status,
                        body: r.text().unwrap_or_default(),
                    });
                }
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            if attempt < ATTEMPTS {
                tracing::warn!(what, attempt, error = %last, "server call failed; retrying");
                std::thread::sleep(backoff);
                backoff *= 2;
            }
        }
        Err(ClientError::Unreachable {
            what: what.into(),
            last,
        })
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let r = self.send(what, || self.http.post(self.url(path)).json(body))?;
        r.json().map_err(|e| ClientError::Unreachable {
            what: what.into(),
            last: format!("bad reply: {e}"),
        })
    }

    /// Registers this worker.
    pub fn register(&self, req: &RegisterWorker) -> Result<Worker, ClientError> {
        self.post("register", "/workers", req)
    }

    /// Leases a job, or `None` when the queue has nothing for this worker.
    pub fn lease(&self, worker_id: Uuid) -> Result<Option<Lease>, ClientError> {
        let path = format!("/workers/{worker_id}/lease");
        let r = self.send("lease", || self.http.post(self.url(&path)))?;
        if r.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        r.json().map(Some).map_err(|e| ClientError::Unreachable {
            what: "lease".into(),
            last: format!("bad reply: {e}"),
        })
    }

    /// Renews the lease; `true` means the job was cancelled.
    pub fn heartbeat(
        &self,
        job_id: Uuid,
        worker_id: Uuid,
        progress: Option<JobProgress>,
    ) -> Result<bool, ClientError> {
        let reply: HeartbeatReply = self.post(
            "heartbeat",
            &format!("/jobs/{job_id}/heartbeat"),
            &Heartbeat {
                worker_id,
                progress,
            },
        )?;
        Ok(reply.cancel)
    }

    /// Ends the job.
    pub fn complete(
        &self,
        job_id: Uuid,
        worker_id: Uuid,
        error: Option<String>,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post(
            "complete",
            &format!("/jobs/{job_id}/complete"),
            &CompleteJob { worker_id, error },
        )?;
        Ok(())
    }

    /// Uploads graded samples of an eval.
    pub fn upload_samples(
        &self,
        eval_id: Uuid,
        worker_id: Uuid,
        samples: Vec<SampleRecord>,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post(
            "samples",
            &format!("/evals/{eval_id}/samples"),
            &UploadSamples { worker_id, samples },
        )?;
        Ok(())
    }

    /// Uploads an eval's final scores.
    pub fn upload_scores(
        &self,
        eval_id: Uuid,
        worker_id: Uuid,
        problems: i32,
        scores: Vec<EvalScore>,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post(
            "scores",
            &format!("/evals/{eval_id}/scores"),
            &UploadScores {
                worker_id,
                problems,
                scores,
            },
        )?;
        Ok(())
    }

    /// Logs metric points to a run.
    pub fn log_metrics(&self, run_id: Uuid, points: Vec<MetricPoint>) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post(
            "metrics",
            &format!("/runs/{run_id}/metrics"),
            &serde_json::json!({ "points": points }),
        )?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, what: &str, path: &str) -> Result<T, ClientError> {
        let r = self.send(what, || self.http.get(self.url(path)))?;
        r.json().map_err(|e| ClientError::Unreachable {
            what: what.into(),
            last: format!("bad reply: {e}"),
        })
    }

    /// A dataset's kind and every row, paged.
    pub fn dataset(&self, id: Uuid) -> Result<(Dataset, Vec<serde_json::Value>), ClientError> {
        let meta: Dataset = self.get("dataset", &format!("/datasets/{id}"))?;
        let mut rows = Vec::with_capacity(meta.row_count.max(0) as usize);
        while rows.len() < meta.row_count as usize {
            let page: DatasetRows = self.get(
                "dataset rows",
                &format!("/datasets/{id}/rows?offset={}&limit=1000", rows.len()),
            )?;
            if page.rows.is_empty() {
                break;
            }
            rows.extend(page.rows);
        }
        Ok((meta, rows))
    }

    /// Registers a model (e.g. a training job's result).
    pub fn register_model(&self, req: &RegisterModel) -> Result<Model, ClientError> {
        self.post("register model", "/models", req)
    }

    /// Uploads completions of a run.
    pub fn upload_completions(
        &self,
        run_id: Uuid,
        completions: Vec<CompletionRecord>,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post(
            "completions",
            &format!("/runs/{run_id}/completions"),
            &serde_json::json!({ "completions": completions }),
        )?;
        Ok(())
    }
}
