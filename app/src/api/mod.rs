//! The dashboard's data: one server function per view. In the browser each is an HTTP call under
//! `/dash/`; on the server its body asks the [`DashboardSource`] the server put in context, so the
//! pages render from the same store functions the REST API uses.

use crucible_types::{
    ArtifactInfo, CompletionRecord, Dataset, DatasetRows, Eval, Job, MetricSeries, MetricSummary,
    Model, ProblemSamples, Project, Run, RunFilter, RunPage, SampleFilter, Team, Worker,
};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod form;
#[cfg(any(feature = "ssr", test))]
mod pivot;
#[cfg(feature = "ssr")]
pub mod ssr;

pub use form::EvalForm;
#[cfg(feature = "ssr")]
pub use ssr::{DashboardSource, Source, SourceError, SourceFuture};
#[cfg(feature = "ssr")]
use ssr::{fail, form_field, futures_join, source};

/// Who is looking at the dashboard. The server resolves it from the session cookie before any page
/// renders; every server function reads as this viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Viewer {
    /// Signed in: reads and submissions act for this team.
    SignedIn(Team),
    /// Not signed in on a deployment with open reads: every team's objects, read-only.
    OpenReads,
    /// Not signed in: nothing is shown until the viewer signs in at `/signin`.
    SignedOut,
}

/// Who is looking (the navigation bar shows the team, or a sign-in link).
#[server(prefix = "/dash", endpoint = "viewer", input = Json)]
pub async fn fetch_viewer() -> Result<Viewer, ServerFnError> {
    Ok(source()?.0.viewer())
}

/// The runs table with what its filters offer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunsView {
    /// The page of runs.
    pub page: RunPage,
    /// Projects, for the project filter and names.
    pub projects: Vec<Project>,
}

/// One run with what its page shows besides charts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDetail {
    /// The run.
    pub run: Run,
    /// Its project.
    pub project: Project,
    /// Its metric keys with summaries (one chart each).
    pub metrics: Vec<MetricSummary>,
    /// Runs overlaid for comparison.
    pub compare: Vec<Run>,
    /// Recent runs of the same project, offered for comparison.
    pub siblings: Vec<Run>,
    /// The files it logged.
    pub artifacts: Vec<ArtifactInfo>,
}

/// One chart's data: a metric key and its series per overlaid run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChartData {
    /// The metric key.
    pub key: String,
    /// `(run, series)` for each overlaid run that has the key.
    pub lines: Vec<(Uuid, MetricSeries)>,
}

/// A run's stored completions at one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutsView {
    /// Steps that have completions, ascending.
    pub steps: Vec<i64>,
    /// The step shown.
    pub step: Option<i64>,
    /// Its completions, by group then sample.
    pub completions: Vec<CompletionRecord>,
}

/// One eval with the model's name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalView {
    /// The eval.
    pub eval: Eval,
    /// The evaluated model's name.
    pub model_name: String,
}

/// One leaderboard cell: what the page shows of the best eval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardCell {
    /// pass@1.
    pub score: f64,
    /// 95% interval.
    pub ci: Option<(f64, f64)>,
    /// The eval behind the cell.
    pub eval_id: Uuid,
    /// The benchmark overlaps the model's training data.
    pub contaminated: bool,
}

/// One model's row, its cells aligned with [`LeaderboardView::benchmarks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRow {
    /// Model id.
    pub model_id: Uuid,
    /// Model name.
    pub name: String,
    /// Mean pass@1 over the benchmarks it has.
    pub mean: f64,
    /// One cell per benchmark column.
    pub cells: Vec<Option<BoardCell>>,
}

/// One page of the leaderboard, pivoted and sorted on the server (1,000 models × 12 benchmarks
/// would be a 5 MB page otherwise).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderboardView {
    /// Benchmark columns, by name.
    pub benchmarks: Vec<String>,
    /// The page's rows, in sort order.
    pub rows: Vec<BoardRow>,
    /// Models on the whole board.
    pub total_models: i64,
    /// The teams the viewer sees (its own, unless reads are open).
    pub teams: Vec<Team>,
}

/// Models per leaderboard page.
pub const LEADERBOARD_PAGE: i64 = 100;

/// A dataset and a page of its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetView {
    /// The dataset.
    pub dataset: Dataset,
    /// Rows from `offset`.
    pub rows: DatasetRows,
}

/// The queue and the workers, with the server's clock so ages are computed in one place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobsView {
    /// Recent jobs, newest first.
    pub jobs: Vec<Job>,
    /// Registered workers.
    pub workers: Vec<Worker>,
    /// Server time when the view was read.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// What the submit form needs to offer choices.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitChoices {
    /// Models to evaluate.
    pub models: Vec<Model>,
    /// Benchmark names the workers know.
    pub benchmarks: Vec<String>,
}

/// The outcome of a form submission: the job, or which field is wrong and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum SubmitOutcome {
    /// The job was queued.
    Queued {
        /// Its id.
        job_id: Uuid,
    },
    /// Nothing was queued.
    Invalid {
        /// The form field at fault.
        field: String,
        /// Why.
        message: String,
    },
}

/// The runs table.
#[server(prefix = "/dash", endpoint = "runs", input = Json)]
pub async fn fetch_runs(filter: RunFilter) -> Result<RunsView, ServerFnError> {
    let s = source()?;
    let (page, projects) = futures_join(s.0.runs(filter), s.0.projects()).await;
    Ok(RunsView {
        page: page.map_err(fail)?,
        projects: projects.map_err(fail)?,
    })
}

/// A run page.
#[server(prefix = "/dash", endpoint = "run", input = Json)]
pub async fn fetch_run(id: Uuid, compare: Vec<Uuid>) -> Result<RunDetail, ServerFnError> {
    let s = source()?;
    let run = s.0.run(id).await.map_err(fail)?;
    let project = s.0.project(run.project_id).await.map_err(fail)?;
    let metrics = s.0.metric_summaries(id).await.map_err(fail)?;
    let artifacts = s.0.artifacts(id).await.map_err(fail)?;
    let mut others = Vec::new();
    for other in compare.into_iter().filter(|c| *c != id).take(8) {
        others.push(s.0.run(other).await.map_err(fail)?);
    }
    let siblings =
        s.0.runs(RunFilter {
            project_id: Some(run.project_id),
            limit: Some(20),
            ..RunFilter::default()
        })
        .await
        .map_err(fail)?
        .runs
        .into_iter()
        .filter(|r| r.id != id)
        .collect();
    Ok(RunDetail {
        run,
        project,
        metrics,
        compare: others,
        siblings,
        artifacts,
    })
}

/// Most charts a run page draws (keys beyond are listed, not charted).
pub const MAX_CHARTS: usize = 48;

/// The charts of a run page: each of the first run's keys, with its series for every overlaid
/// run (a run without the key is left out of that chart). The queries run concurrently.
#[server(prefix = "/dash", endpoint = "charts", input = Json)]
pub async fn fetch_charts(runs: Vec<Uuid>) -> Result<Vec<ChartData>, ServerFnError> {
    let s = source()?;
    let runs: Vec<Uuid> = runs.into_iter().take(9).collect();
    let Some(first) = runs.first() else {
        return Ok(Vec::new());
    };
    let keys: Vec<String> =
        s.0.metric_summaries(*first)
            .await
            .map_err(fail)?
            .into_iter()
            .map(|m| m.key)
            .take(MAX_CHARTS)
            .collect();
    let wanted: Vec<(usize, Uuid)> = (0..keys.len())
        .flat_map(|k| runs.iter().map(move |r| (k, *r)))
        .collect();
    let fetched =
        futures::future::join_all(wanted.iter().map(|(k, r)| s.0.series(*r, keys[*k].clone())))
            .await;
    let mut charts: Vec<ChartData> = keys
        .iter()
        .map(|key| ChartData {
            key: key.clone(),
            lines: Vec::new(),
        })
        .collect();
    for ((k, run), series) in wanted.into_iter().zip(fetched) {
        let series = series.map_err(fail)?;
        if !series.buckets.is_empty() {
            charts[k].lines.push((run, series));
        }
    }
    Ok(charts)
}

/// Completions (rollouts) of one step of a run: `step`, or the latest when `None`.
#[server(prefix = "/dash", endpoint = "completions", input = Json)]
pub async fn fetch_completions(
    run_id: Uuid,
    step: Option<i64>,
) -> Result<RolloutsView, ServerFnError> {
    let s = source()?;
    let steps = s.0.completion_steps(run_id).await.map_err(fail)?;
    let Some(step) = step
        .filter(|st| steps.contains(st))
        .or(steps.last().copied())
    else {
        return Ok(RolloutsView {
            steps,
            step: None,
            completions: Vec::new(),
        });
    };
    let completions = s.0.completions(run_id, step).await.map_err(fail)?;
    Ok(RolloutsView {
        steps,
        step: Some(step),
        completions,
    })
}

/// The evals list.
#[server(prefix = "/dash", endpoint = "evals", input = Json)]
pub async fn fetch_evals() -> Result<Vec<EvalView>, ServerFnError> {
    let s = source()?;
    let (evals, models) = futures_join(s.0.evals(), s.0.models()).await;
    let models = models.map_err(fail)?;
    Ok(evals
        .map_err(fail)?
        .into_iter()
        .map(|eval| EvalView {
            model_name: model_name(&models, eval.model_id),
            eval,
        })
        .collect())
}

#[cfg(feature = "ssr")]
fn model_name(models: &[Model], id: Uuid) -> String {
    models
        .iter()
        .find(|m| m.id == id)
        .map_or_else(|| id.to_string(), |m| m.name.clone())
}

/// One eval's header.
#[server(prefix = "/dash", endpoint = "eval", input = Json)]
pub async fn fetch_eval(id: Uuid) -> Result<EvalView, ServerFnError> {
    let s = source()?;
    let eval = s.0.eval(id).await.map_err(fail)?;
    let models = s.0.models().await.map_err(fail)?;
    Ok(EvalView {
        model_name: model_name(&models, eval.model_id),
        eval,
    })
}

/// A page of the sample browser.
#[server(prefix = "/dash", endpoint = "samples", input = Json)]
pub async fn fetch_samples(
    id: Uuid,
    filter: SampleFilter,
    offset: i64,
) -> Result<Vec<ProblemSamples>, ServerFnError> {
    source()?
        .0
        .samples(id, filter, offset.max(0), SAMPLE_PAGE)
        .await
        .map_err(fail)
}

/// Problems per page of the sample browser.
pub const SAMPLE_PAGE: i64 = 20;

/// The leaderboard.
#[server(prefix = "/dash", endpoint = "leaderboard", input = Json)]
pub async fn fetch_leaderboard(
    team_id: Option<Uuid>,
    sort: String,
    page: i64,
) -> Result<LeaderboardView, ServerFnError> {
    let s = source()?;
    let (rows, teams) = futures_join(s.0.leaderboard(team_id), s.0.teams()).await;
    let (benchmarks, models) = pivot::pivot(rows.map_err(fail)?, &sort);
    let total_models = models.len() as i64;
    let start = (page.max(0) * LEADERBOARD_PAGE) as usize;
    let rows = models
        .into_iter()
        .skip(start)
        .take(LEADERBOARD_PAGE as usize)
        .map(|m| BoardRow {
            model_id: m.model_id,
            mean: m.mean(),
            cells: benchmarks
                .iter()
                .map(|b| {
                    m.cells.get(b).map(|c| BoardCell {
                        score: c.score,
                        ci: c.ci_low.zip(c.ci_high),
                        eval_id: c.eval_id,
                        contaminated: c.contaminated,
                    })
                })
                .collect(),
            name: m.name,
        })
        .collect();
    Ok(LeaderboardView {
        benchmarks,
        rows,
        total_models,
        teams: teams.map_err(fail)?,
    })
}

/// The datasets list.
#[server(prefix = "/dash", endpoint = "datasets", input = Json)]
pub async fn fetch_datasets() -> Result<Vec<Dataset>, ServerFnError> {
    source()?.0.datasets().await.map_err(fail)
}

/// One dataset with a page of rows.
#[server(prefix = "/dash", endpoint = "dataset", input = Json)]
pub async fn fetch_dataset(id: Uuid, offset: i64) -> Result<DatasetView, ServerFnError> {
    let s = source()?;
    let dataset = s.0.dataset(id).await.map_err(fail)?;
    let rows =
        s.0.dataset_rows(id, offset.max(0), DATASET_PAGE)
            .await
            .map_err(fail)?;
    Ok(DatasetView { dataset, rows })
}

/// Rows per page of the dataset preview.
pub const DATASET_PAGE: i64 = 25;

/// The models list.
#[server(prefix = "/dash", endpoint = "models", input = Json)]
pub async fn fetch_models() -> Result<Vec<Model>, ServerFnError> {
    source()?.0.models().await.map_err(fail)
}

/// The queue and workers.
#[server(prefix = "/dash", endpoint = "jobs", input = Json)]
pub async fn fetch_jobs() -> Result<JobsView, ServerFnError> {
    let s = source()?;
    let (jobs, workers) = futures_join(s.0.jobs(), s.0.workers()).await;
    Ok(JobsView {
        jobs: jobs.map_err(fail)?,
        workers: workers.map_err(fail)?,
        now: chrono::Utc::now(),
    })
}

/// Choices for the submit form.
#[server(prefix = "/dash", endpoint = "submit-choices", input = Json)]
pub async fn fetch_submit_choices() -> Result<SubmitChoices, ServerFnError> {
    let s = source()?;
    let (models, datasets) = futures_join(s.0.models(), s.0.datasets()).await;
    let mut benchmarks: Vec<String> = crucible_types::BENCHMARKS
        .iter()
        .map(|b| b.to_string())
        .collect();
    benchmarks.extend(
        datasets
            .map_err(fail)?
            .into_iter()
            .map(|d| format!("dataset:{}", d.id)),
    );
    Ok(SubmitChoices {
        models: models.map_err(fail)?,
        benchmarks,
    })
}

/// Queues an eval job from the form; a wrong field comes back named, and nothing is queued.
#[server(prefix = "/dash", endpoint = "submit-eval")]
pub async fn submit_eval(form: EvalForm) -> Result<SubmitOutcome, ServerFnError> {
    let job = match form.to_job() {
        Ok(job) => job,
        Err((field, message)) => return Ok(SubmitOutcome::Invalid { field, message }),
    };
    match source()?.0.submit(job).await {
        Ok(job) => Ok(SubmitOutcome::Queued { job_id: job.id }),
        Err(SourceError {
            field: Some(field),
            message,
        }) => Ok(SubmitOutcome::Invalid {
            field: form_field(&field).to_string(),
            message,
        }),
        Err(e) => Err(fail(e)),
    }
}
