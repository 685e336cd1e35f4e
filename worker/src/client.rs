//! The one client of Crucible's REST API, used by workers and by every CLI command: typed
//! requests and replies, retries of transient failures (connection errors, 5xx) with back-off,
//! and the server's JSON error body kept as a typed refusal. Writes are idempotent on the
//! server, so retrying one that may have landed is safe: a 2xx means the write is durable
//! (committed synchronously); without one, the identical request is sent again, which is how
//! metric batches survive a server or database restart (points carry their own timestamps, so a
//! resend lands exactly as the first send would have). A 4xx is final and never retried.

use crucible_types::{
    ApiError, ApiErrorBody, CompleteJob, CompletionRecord, CreateProject, CreateRun, Dataset,
    DatasetRows, Eval, EvalScore, Heartbeat, HeartbeatReply, ImportDatasetResult, Job, JobProgress,
    LeaderboardRow, Lease, MetricPoint, Model, ProblemSamples, Project, RegisterModel,
    RegisterWorker, Run, SampleRecord, SubmitJob, UpdateRun, UploadSamples, UploadScores, Worker,
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
/// The error code the server gives a worker whose job lease is gone.
const LEASE_LOST: &str = "lease_lost";

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request (4xx); retrying would not help.
    #[error("{what}: HTTP {status}: {}", describe(.error))]
    Refused {
        what: String,
        status: StatusCode,
        error: ApiErrorBody,
    },
    /// The job's lease is gone (expired or taken over): stop working on it.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// The server could not be reached or kept failing.
    #[error("cannot reach the server for {what} after {ATTEMPTS} attempts: {last}")]
    Unreachable { what: String, last: String },
    /// The server answered with a body this client does not understand.
    #[error("{what}: unexpected reply: {reason}")]
    BadReply { what: String, reason: String },
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A refusal's message, with the field it names.
fn describe(e: &ApiErrorBody) -> String {
    match &e.field {
        Some(f) => format!("{} (field `{f}`)", e.message),
        None => e.message.clone(),
    }
}

/// A connection to one Crucible server, acting for one team (or anonymously, for reads a
/// deployment leaves open).
#[derive(Clone)]
pub struct ServerClient {
    base: String,
    token: Option<String>,
    http: Client,
}

impl ServerClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) with a team token.
    pub fn new(base: &str, token: Option<&str>) -> Self {
        let http = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default();
        ServerClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            http,
        }
    }

    /// The server's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends with retries on connection errors and 5xx; a 4xx is a typed refusal.
    fn send(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut req = build();
            if let Some(token) = &self.token {
                req = req.bearer_auth(token);
            }
            match req.send() {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if r.status().is_client_error() => return Err(refusal(what, r)),
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
        reply(what, r)
    }

    fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let r = self.send(what, || self.http.patch(self.url(path)).json(body))?;
        reply(what, r)
    }

    fn get<T: DeserializeOwned>(&self, what: &str, path: &str) -> Result<T, ClientError> {
        let r = self.send(what, || self.http.get(self.url(path)))?;
        reply(what, r)
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
        reply("lease", r).map(Some)
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

    /// Queues a job.
    pub fn submit(&self, req: &SubmitJob) -> Result<Job, ClientError> {
        self.post("submit job", "/jobs", req)
    }

    /// One job.
    pub fn job(&self, id: Uuid) -> Result<Job, ClientError> {
        self.get("job", &format!("/jobs/{id}"))
    }

    /// The queue, newest first, optionally only jobs in `status`.
    pub fn jobs(&self, status: Option<crucible_types::JobStatus>) -> Result<Vec<Job>, ClientError> {
        match status {
            Some(s) => self.get("jobs", &format!("/jobs?status={s}")),
            None => self.get("jobs", "/jobs"),
        }
    }

    /// The leaderboard, optionally of one team.
    pub fn leaderboard(&self, team: Option<Uuid>) -> Result<Vec<LeaderboardRow>, ClientError> {
        match team {
            Some(t) => self.get("leaderboard", &format!("/leaderboard?team_id={t}")),
            None => self.get("leaderboard", "/leaderboard"),
        }
    }

    /// Every metric of a run with its latest value (what `submit --wait` shows beside its bar).
    pub fn metric_summaries(
        &self,
        run_id: Uuid,
    ) -> Result<Vec<crucible_types::tracking::MetricSummary>, ClientError> {
        self.get("metrics", &format!("/runs/{run_id}/metrics"))
    }

    /// One eval with its scores.
    pub fn eval(&self, id: Uuid) -> Result<Eval, ClientError> {
        self.get("eval", &format!("/evals/{id}"))
    }

    /// One page of an eval's graded samples, grouped by problem.
    pub fn eval_samples(
        &self,
        id: Uuid,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ProblemSamples>, ClientError> {
        self.get(
            "eval samples",
            &format!("/evals/{id}/samples?offset={offset}&limit={limit}"),
        )
    }

    /// One model.
    pub fn model(&self, id: Uuid) -> Result<Model, ClientError> {
        self.get("model", &format!("/models/{id}"))
    }

    /// The team's models.
    pub fn models(&self) -> Result<Vec<Model>, ClientError> {
        self.get("models", "/models")
    }

    /// Imports JSONL rows as a dataset version (identical content reuses its version).
    pub fn import_dataset(
        &self,
        name: &str,
        kind: &str,
        source: &str,
        jsonl: String,
    ) -> Result<ImportDatasetResult, ClientError> {
        let what = "dataset import";
        let query = [("name", name), ("kind", kind), ("source", source)];
        let r = self.send(what, || {
            self.http
                .post(self.url("/datasets/import"))
                .query(&query)
                .header("content-type", "application/x-ndjson")
                .body(jsonl.clone())
        })?;
        reply(what, r)
    }

    /// The team's project `name`, created when it does not exist yet.
    pub fn project(&self, name: &str) -> Result<Project, ClientError> {
        let req = CreateProject {
            name: name.to_string(),
            description: String::new(),
        };
        match self.post("create project", "/projects", &req) {
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
                let all: Vec<Project> = self.get("projects", "/projects")?;
                all.into_iter()
                    .find(|p| p.name == name)
                    .ok_or_else(|| ClientError::BadReply {
                        what: "projects".into(),
                        reason: format!("project {name:?} exists but is not listed"),
                    })
            }
            other => other,
        }
    }

    /// Creates a run.
    pub fn create_run(&self, req: &CreateRun) -> Result<Run, ClientError> {
        self.post("create run", "/runs", req)
    }

    /// Changes a run's status or name.
    pub fn update_run(&self, run_id: Uuid, req: &UpdateRun) -> Result<Run, ClientError> {
        self.patch("update run", &format!("/runs/{run_id}"), req)
    }
}

/// The server's refusal as a typed error; a 409 with code `lease_lost` is [`ClientError::LeaseLost`].
fn refusal(what: &str, r: Response) -> ClientError {
    let status = r.status();
    let text = r.text().unwrap_or_default();
    let error = serde_json::from_str::<ApiError>(&text)
        .map(|e| e.error)
        .unwrap_or_else(|_| ApiErrorBody {
            code: status.as_str().to_string(),
            message: text,
            field: None,
        });
    if error.code == LEASE_LOST {
        return ClientError::LeaseLost(error.message);
    }
    ClientError::Refused {
        what: what.into(),
        status,
        error,
    }
}

/// A successful reply's JSON body.
fn reply<T: DeserializeOwned>(what: &str, r: Response) -> Result<T, ClientError> {
    r.json().map_err(|e| ClientError::BadReply {
        what: what.into(),
        reason: e.to_string(),
    })
}
