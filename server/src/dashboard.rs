//! Hosts the leptos dashboard (`crucible-app`): server-side rendering of every page at `/`, the
//! dashboard's server functions under `/dash/`, and the hydration bundle under `/pkg/`. The pages
//! read through [`StoreSource`], the same store functions the REST API uses.

use crate::error::AppError;
use crate::store;
use axum::Router;
use crucible_app::api::{DashboardSource, Source, SourceError, SourceFuture};
use crucible_types::{
    CompletionRecord, Dataset, DatasetRows, Eval, Job, LeaderboardRow, MetricSeries, MetricSummary,
    Model, ProblemSamples, Project, Run, RunFilter, RunPage, SampleFilter, SubmitJob, Team, Worker,
};
use leptos::prelude::{LeptosOptions, provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower_http::services::ServeDir;
use uuid::Uuid;

/// The name of the hydration bundle (`pkg/crucible.js`, `pkg/crucible.wasm`); the same value is
/// set for every cargo call in `.cargo/config.toml` because leptos also reads it at compile time.
pub const OUTPUT_NAME: &str = "crucible";

/// Buckets per chart: about two per horizontal pixel of a chart.
const CHART_BUCKETS: i32 = 400;

/// Evals the evals page lists.
const EVALS_SHOWN: i64 = 200;

/// Jobs the queue page lists.
const JOBS_SHOWN: i64 = 200;

/// The folder holding `pkg/` with the hydration bundle: `CRUCIBLE_SITE_DIR`, else `site/` in the
/// cargo target folder this binary was built in (where `scripts/build-site.sh` writes it).
pub fn find_site_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CRUCIBLE_SITE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("site"))
        .find(|site| has_bundle(site))
}

fn has_bundle(site: &Path) -> bool {
    site.join("pkg")
        .join(format!("{OUTPUT_NAME}.wasm"))
        .is_file()
}

/// The dashboard's routes. Without a bundle the pages still render (no live updates or
/// client-side interaction), and a warning says how to build it.
pub fn router(pool: PgPool, site_root: Option<PathBuf>) -> Router {
    let site = site_root.filter(|s| has_bundle(s));
    match &site {
        Some(s) => tracing::info!(site = %s.display(), "dashboard bundle found"),
        None => tracing::warn!(
            "no dashboard bundle (pkg/{OUTPUT_NAME}.wasm): pages render without live updates; \
             build it with scripts/build-site.sh or set CRUCIBLE_SITE_DIR"
        ),
    }
    let site = site.unwrap_or_else(|| PathBuf::from("site"));
    let options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(site.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .build();
    let source = Source(Arc::new(StoreSource { pool }));
    let shell_options = options.clone();
    Router::new()
        .leptos_routes_with_context(
            &options,
            generate_route_list(crucible_app::App),
            move || provide_context(source.clone()),
            move || crucible_app::shell(shell_options.clone()),
        )
        .nest_service("/pkg", ServeDir::new(site.join("pkg")))
        .with_state(options)
}

/// The dashboard's data source over the store.
pub struct StoreSource {
    pool: PgPool,
}

fn source_error(e: AppError) -> SourceError {
    let field = match &e {
        AppError::Invalid { field, .. } => Some(field.clone()),
        AppError::Unauthorized(_) => Some("authorization".to_string()),
        AppError::Conflict { field, .. } => field.clone(),
        _ => None,
    };
    let message = match &e {
        // Internal errors are logged, never shown.
        AppError::Db(sqlx::Error::RowNotFound) => "not found".to_string(),
        AppError::Db(inner) => {
            tracing::error!(error = %inner, "dashboard query failed");
            "internal error".to_string()
        }
        other => other.to_string(),
    };
    SourceError { field, message }
}

/// Boxes a store call and maps its error.
fn boxed<'a, T: 'a>(
    fut: impl std::future::Future<Output = Result<T, AppError>> + Send + 'a,
) -> SourceFuture<'a, T> {
    Box::pin(async move { fut.await.map_err(source_error) })
}

impl DashboardSource for StoreSource {
    fn projects(&self) -> SourceFuture<'_, Vec<Project>> {
        boxed(store::projects::list(&self.pool, None))
    }
    fn runs(&self, filter: RunFilter) -> SourceFuture<'_, RunPage> {
        boxed(async move { store::runs::list(&self.pool, &filter).await })
    }
    fn run(&self, id: Uuid) -> SourceFuture<'_, Run> {
        boxed(async move {
            let mut conn = self.pool.acquire().await?;
            Ok(store::runs::get_owned(&mut conn, id).await?.run)
        })
    }
    fn project(&self, id: Uuid) -> SourceFuture<'_, Project> {
        boxed(store::projects::get(&self.pool, id))
    }
    fn metric_summaries(&self, run_id: Uuid) -> SourceFuture<'_, Vec<MetricSummary>> {
        boxed(store::metrics::summaries(&self.pool, run_id))
    }
    fn series(&self, run_id: Uuid, key: String) -> SourceFuture<'_, MetricSeries> {
        boxed(
            async move { store::metrics::downsample(&self.pool, run_id, &key, CHART_BUCKETS).await },
        )
    }
    fn completion_steps(&self, run_id: Uuid) -> SourceFuture<'_, Vec<i64>> {
        boxed(store::completions::steps(&self.pool, run_id))
    }
    fn completions(&self, run_id: Uuid, step: i64) -> SourceFuture<'_, Vec<CompletionRecord>> {
        boxed(store::completions::list(
            &self.pool,
            run_id,
            Some(step),
            0,
            1000,
        ))
    }
    fn evals(&self) -> SourceFuture<'_, Vec<Eval>> {
        boxed(store::evals::list(&self.pool, None, None, EVALS_SHOWN))
    }
    fn eval(&self, id: Uuid) -> SourceFuture<'_, Eval> {
        boxed(async move {
            let mut conn = self.pool.acquire().await?;
            store::evals::get(&mut conn, id).await
        })
    }
    fn samples(
        &self,
        eval_id: Uuid,
        filter: SampleFilter,
        offset: i64,
        limit: i64,
    ) -> SourceFuture<'_, Vec<ProblemSamples>> {
        boxed(store::evals::samples(
            &self.pool, eval_id, filter, offset, limit,
        ))
    }
    fn leaderboard(&self, team_id: Option<Uuid>) -> SourceFuture<'_, Vec<LeaderboardRow>> {
        boxed(store::evals::leaderboard(&self.pool, team_id))
    }
    fn teams(&self) -> SourceFuture<'_, Vec<Team>> {
        boxed(store::teams::list(&self.pool))
    }
    fn datasets(&self) -> SourceFuture<'_, Vec<Dataset>> {
        boxed(store::datasets::list(&self.pool, None))
    }
    fn dataset(&self, id: Uuid) -> SourceFuture<'_, Dataset> {
        boxed(store::datasets::get(&self.pool, id))
    }
    fn dataset_rows(&self, id: Uuid, offset: i64, limit: i64) -> SourceFuture<'_, DatasetRows> {
        boxed(store::datasets::rows(&self.pool, id, offset, limit))
    }
    fn models(&self) -> SourceFuture<'_, Vec<Model>> {
        boxed(store::models::list(&self.pool, None))
    }
    fn jobs(&self) -> SourceFuture<'_, Vec<Job>> {
        boxed(store::jobs::list(&self.pool, None, None, JOBS_SHOWN))
    }
    fn workers(&self) -> SourceFuture<'_, Vec<Worker>> {
        boxed(store::workers::list(&self.pool, None))
    }
    fn submit(&self, token: String, job: SubmitJob) -> SourceFuture<'_, Job> {
        boxed(async move {
            let team_id = crate::auth::team_for_token(&self.pool, &token).await?;
            store::jobs::queue(&self.pool, team_id, &job).await
        })
    }
}
