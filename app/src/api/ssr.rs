//! The server side of the dashboard's data: the [`DashboardSource`] the server implements over
//! its store — one per request, bound to whoever signed in — and what every server function body
//! needs to reach it.

use crucible_types::{
    ArtifactInfo, CompletionRecord, Dataset, DatasetRows, Eval, Job, LeaderboardRow, MetricSeries,
    MetricSummary, Model, ProblemSamples, Project, Run, RunFilter, RunPage, SampleFilter, Team,
    Worker,
};
use leptos::prelude::*;
use uuid::Uuid;

use super::Viewer;

/// An error from the data source: the field at fault (when there is one) and a message.
#[derive(Debug, Clone)]
pub struct SourceError {
    /// Request field that was wrong, if the error is about input.
    pub field: Option<String>,
    /// Human-readable reason.
    pub message: String,
}

/// A boxed future as the data source returns it (the trait stays object-safe).
pub type SourceFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// Where the server functions read from; the server implements it over its store, scoped to the
/// request's [`Viewer`]: every read sees that team's objects only, and a signed-out viewer none.
pub trait DashboardSource: Send + Sync + 'static {
    /// Who is looking.
    fn viewer(&self) -> Viewer;
    /// Every project.
    fn projects(&self) -> SourceFuture<'_, Vec<Project>>;
    /// A filtered, sorted page of runs.
    fn runs(&self, filter: RunFilter) -> SourceFuture<'_, RunPage>;
    /// One run.
    fn run(&self, id: Uuid) -> SourceFuture<'_, Run>;
    /// One project.
    fn project(&self, id: Uuid) -> SourceFuture<'_, Project>;
    /// A run's metric keys.
    fn metric_summaries(&self, run_id: Uuid) -> SourceFuture<'_, Vec<MetricSummary>>;
    /// A run's artifacts, by path.
    fn artifacts(&self, run_id: Uuid) -> SourceFuture<'_, Vec<ArtifactInfo>>;
    /// A downsampled series for charts.
    fn series(&self, run_id: Uuid, key: String) -> SourceFuture<'_, MetricSeries>;
    /// Steps with stored completions.
    fn completion_steps(&self, run_id: Uuid) -> SourceFuture<'_, Vec<i64>>;
    /// Completions of one step.
    fn completions(&self, run_id: Uuid, step: i64) -> SourceFuture<'_, Vec<CompletionRecord>>;
    /// Recent evals.
    fn evals(&self) -> SourceFuture<'_, Vec<Eval>>;
    /// One eval.
    fn eval(&self, id: Uuid) -> SourceFuture<'_, Eval>;
    /// Problems of an eval with their samples.
    fn samples(
        &self,
        eval_id: Uuid,
        filter: SampleFilter,
        offset: i64,
        limit: i64,
    ) -> SourceFuture<'_, Vec<ProblemSamples>>;
    /// The leaderboard, optionally of one team.
    fn leaderboard(&self, team_id: Option<Uuid>) -> SourceFuture<'_, Vec<LeaderboardRow>>;
    /// The teams the viewer sees (the leaderboard's team filter).
    fn teams(&self) -> SourceFuture<'_, Vec<Team>>;
    /// Every dataset.
    fn datasets(&self) -> SourceFuture<'_, Vec<Dataset>>;
    /// One dataset.
    fn dataset(&self, id: Uuid) -> SourceFuture<'_, Dataset>;
    /// Rows of a dataset.
    fn dataset_rows(&self, id: Uuid, offset: i64, limit: i64) -> SourceFuture<'_, DatasetRows>;
    /// Every model.
    fn models(&self) -> SourceFuture<'_, Vec<Model>>;
    /// Recent jobs.
    fn jobs(&self) -> SourceFuture<'_, Vec<Job>>;
    /// Registered workers.
    fn workers(&self) -> SourceFuture<'_, Vec<Worker>>;
    /// Queues a job for the signed-in team.
    fn submit(&self, job: crucible_types::SubmitJob) -> SourceFuture<'_, Job>;
}

/// The source in context, shared by every request.
#[derive(Clone)]
pub struct Source(pub std::sync::Arc<dyn DashboardSource>);

pub(crate) fn source() -> Result<Source, ServerFnError> {
    use_context::<Source>().ok_or_else(|| ServerFnError::new("the dashboard has no data source"))
}

pub(crate) fn fail(e: SourceError) -> ServerFnError {
    match e.field {
        Some(field) => ServerFnError::new(format!("{field}: {}", e.message)),
        None => ServerFnError::new(e.message),
    }
}

/// The form field an API field error belongs to.
pub(crate) fn form_field(api_field: &str) -> &str {
    let last = api_field.rsplit('.').next().unwrap_or(api_field);
    match last {
        "benchmarks" => "benchmark",
        other => other,
    }
}

/// Runs two futures concurrently on one task (both hit the pool independently).
pub(crate) async fn futures_join<A, B>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
) -> (A, B) {
    futures::join!(a, b)
}
