//! Prometheus metrics of this worker process, served at `GET /metrics` on the address
//! `crucible worker --metrics-addr` names: jobs run by kind and outcome, the running job's
//! progress, tokens generated, and the verifier queue (depth, wait, grading time).
//!
//! One registry per process, as Prometheus clients keep it: the engine's callers and the
//! verifier pool's consumers record into it without a handle threaded through every job.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

/// The content type of an OpenMetrics text page.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a finished job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    outcome: &'static str,
}

/// How a job ended, as the worker saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// It finished and its results were uploaded.
    Succeeded,
    /// It failed (bad input, a model that does not load, an internal fault).
    Failed,
    /// It was cancelled, or the lease was lost to another worker.
    Stopped,
}

impl JobOutcome {
    /// The label value, in the lower case of Prometheus labels.
    fn label(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
            JobOutcome::Stopped => "stopped",
        }
    }
}

/// Labels of the running-job gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The worker's metrics.
pub struct WorkerTelemetry {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    running: Family<KindLabels, Gauge>,
    progress_done: Gauge,
    progress_total: Gauge,
    tokens: Counter,
    verifier_queue: Gauge,
    verifier_wait: Histogram,
    verifier_grade: Histogram,
}

impl Default for WorkerTelemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("crucible_worker");
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Jobs this worker ran, by kind and outcome",
            jobs.clone(),
        );
        let running = Family::<KindLabels, Gauge>::default();
        registry.register(
            "jobs_running",
            "Jobs running on this worker now, by kind",
            running.clone(),
        );
        let progress_done = Gauge::default();
        registry.register(
            "job_progress_done",
            "Units of the running job done (samples, steps), as its heartbeat reports them",
            progress_done.clone(),
        );
        let progress_total = Gauge::default();
        registry.register(
            "job_progress_total",
            "Units of the running job in all (0 when idle)",
            progress_total.clone(),
        );
        let tokens = Counter::default();
        registry.register(
            "tokens_generated",
            "Tokens decoded by the engine for evals, generation and RL rollouts",
            tokens.clone(),
        );
        let verifier_queue = Gauge::default();
        registry.register(
            "verifier_queue_depth",
            "Completions submitted to the verifier pool and not yet graded",
            verifier_queue.clone(),
        );
        // 100 µs to ~26 s: a math grade takes microseconds, a sandboxed code run seconds.
        let buckets = || Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let verifier_wait = buckets();
        registry.register_with_unit(
            "verifier_wait",
            "Time a completion waited in the verifier queue before a judge took it",
            Unit::Seconds,
            verifier_wait.clone(),
        );
        let verifier_grade = buckets();
        registry.register_with_unit(
            "verifier_grade",
            "Time a judge spent grading one completion",
            Unit::Seconds,
            verifier_grade.clone(),
        );
        Self {
            registry,
            jobs,
            running,
            progress_done,
            progress_total,
            tokens,
            verifier_queue,
            verifier_wait,
            verifier_grade,
        }
    }
}

static TELEMETRY: LazyLock<WorkerTelemetry> = LazyLock::new(WorkerTelemetry::default);

/// This process's worker metrics.
pub fn telemetry() -> &'static WorkerTelemetry {
    &TELEMETRY
}

impl WorkerTelemetry {
    /// A job of `kind` started.
    pub fn job_started(&self, kind: &str) {
        self.running_gauge(kind).inc();
        self.progress(0, 0);
    }

    /// A job of `kind` ended with `outcome`.
    pub fn job_finished(&self, kind: &str, outcome: JobOutcome) {
        self.running_gauge(kind).dec();
        self.progress(0, 0);
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_string(),
                outcome: outcome.label(),
            })
            .inc();
    }

    fn running_gauge(&self, kind: &str) -> Gauge {
        self.running.get_or_create_owned(&KindLabels {
            kind: kind.to_string(),
        })
    }

    /// The running job's progress.
    pub fn progress(&self, done: u64, total: u64) {
        self.progress_done
            .set(i64::try_from(done).unwrap_or(i64::MAX));
        self.progress_total
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    /// `n` tokens were decoded.
    pub fn tokens_generated(&self, n: usize) {
        self.tokens.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// A grade came back from the verifier pool after `queued` in its queue and `ran` grading,
    /// leaving `pending` completions still to grade.
    pub fn graded(&self, queued: Duration, ran: Duration, pending: u64) {
        self.verifier_wait.observe(queued.as_secs_f64());
        self.verifier_grade.observe(ran.as_secs_f64());
        self.verifier_pending(pending);
    }

    /// The verifier pool holds `pending` completions not yet graded.
    pub fn verifier_pending(&self, pending: u64) {
        self.verifier_queue
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    fn page(&self) -> Result<String, std::fmt::Error> {
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, &self.registry)?;
        Ok(page)
    }
}

/// Serves this process's metrics at `http://<addr>/metrics` from a thread of its own, and
/// returns the address bound (a port of 0 picks a free one). The bind happens here, so a taken
/// port is an error at start-up rather than a silent gap in the dashboards.
pub fn serve_metrics(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "the metrics endpoint cannot listen");
                        return;
                    }
                };
                let app = axum::Router::new().route("/metrics", axum::routing::get(scrape));
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "the metrics endpoint stopped");
                }
            });
        })?;
    Ok(bound)
}

async fn scrape() -> axum::response::Response {
    use axum::response::IntoResponse;
    match telemetry().page() {
        Ok(page) => ([(axum::http::header::CONTENT_TYPE, OPENMETRICS)], page).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics page");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
