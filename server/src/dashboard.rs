//! Hosts the leptos dashboard (`crucible-app`): server-side rendering of every page at `/`, the
//! dashboard's server functions under `/dash/`, the hydration bundle under `/pkg/`, and sign-in
//! under `/auth/`. Each request's session cookie is resolved to a [`Viewer`] first; the pages read
//! through a [`StoreSource`] bound to it, over the same store functions the REST API uses.

use crate::auth::{Owned, SESSION_COOKIE, ScopeCheck, session_cookie};
use crate::error::AppError;
use crate::state::AppState;
use crate::store;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crucible_app::api::{DashboardSource, Source, SourceError, SourceFuture, Viewer};
use crucible_types::{
    ArtifactInfo, CompletionRecord, Dataset, DatasetRows, Eval, Job, LeaderboardRow, MetricSeries,
    MetricSummary, Model, ProblemSamples, Project, ReadScope, Run, RunFilter, RunPage,
    SampleFilter, SubmitJob, Team, Worker,
};
use leptos::prelude::{LeptosOptions, provide_context, use_context};
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
pub fn router(state: AppState, site_root: Option<PathBuf>) -> Router {
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
    let pool = state.pool.clone();
    let artifacts = state.artifacts.clone();
    let shell_options = options.clone();
    let pages = Router::new()
        .leptos_routes_with_context(
            &options,
            generate_route_list(crucible_app::App),
            move || {
                // `resolve_viewer` put the viewer on the request; leptos hands its parts over.
                let viewer = use_context::<Parts>()
                    .and_then(|p| p.extensions.get::<Viewer>().cloned())
                    .unwrap_or(Viewer::SignedOut);
                let source = StoreSource {
                    pool: pool.clone(),
                    artifacts: artifacts.clone(),
                    viewer,
                };
                provide_context(Source(Arc::new(source)));
            },
            move || crucible_app::shell(shell_options.clone()),
        )
        // Pages and server functions only: the bundle's files need no session lookup.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            resolve_viewer,
        ))
        .nest_service("/pkg", ServeDir::new(site.join("pkg")))
        .with_state(options);
    let auth = Router::new()
        .route("/auth/signin", post(sign_in))
        .route("/auth/link", get(redeem_link))
        .route("/auth/signout", post(sign_out))
        .with_state(state);
    pages.merge(auth)
}

/// Resolves the session cookie to the [`Viewer`] every page and server function reads as.
async fn resolve_viewer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let viewer = match session_cookie(request.headers()) {
        Some(secret) => match store::sessions::team(&state.pool, secret).await {
            Ok(team) => Viewer::SignedIn(team),
            Err(AppError::Unauthorized(_)) => signed_out(&state),
            Err(e) => return e.into_response(),
        },
        None => signed_out(&state),
    };
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

fn signed_out(state: &AppState) -> Viewer {
    if state.open_reads {
        Viewer::OpenReads
    } else {
        Viewer::SignedOut
    }
}

/// A 303 to `location`, optionally setting the session cookie (`Some("")` clears it).
fn redirect(location: &str, session: Option<&str>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
    );
    if let Some(secret) = session {
        let max_age = if secret.is_empty() {
            0
        } else {
            i64::from(store::sessions::SESSION_DAYS) * 86_400
        };
        let cookie =
            format!("{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.insert(SET_COOKIE, v);
        }
    }
    response
}

/// Where a failed sign-in lands, or the server error it was.
fn refused(e: AppError, code: &str) -> Response {
    match e {
        AppError::Unauthorized(_) => redirect(&format!("/signin?error={code}"), None),
        other => other.into_response(),
    }
}

/// `POST /auth/signin` (form field `token`): a session for the token's team, then the runs page.
async fn sign_in(State(state): State<AppState>, body: Bytes) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return redirect("/signin?error=missing", None);
    };
    match store::sessions::sign_in(&state.pool, &token).await {
        Ok(secret) => redirect("/", Some(&secret)),
        Err(e) => refused(e, "token"),
    }
}

/// `GET /auth/link?code=…`: spends the one-time code `crucible up` printed on a session, and
/// redirects to `/` so the code leaves the address bar.
async fn redeem_link(State(state): State<AppState>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let code = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned());
    let Some(code) = code else {
        return redirect("/signin?error=link", None);
    };
    match store::sessions::redeem_link(&state.pool, &code).await {
        Ok(secret) => redirect("/", Some(&secret)),
        Err(e) => refused(e, "link"),
    }
}

/// `POST /auth/signout`: ends the session and clears the cookie.
async fn sign_out(State(state): State<AppState>, request: Request) -> Response {
    if let Some(secret) = session_cookie(request.headers())
        && let Err(e) = store::sessions::close(&state.pool, secret).await
    {
        return e.into_response();
    }
    redirect("/signin", Some(""))
}

/// The dashboard's data source over the store, as one viewer sees it.
pub struct StoreSource {
    pool: PgPool,
    artifacts: Arc<crate::artifacts::Artifacts>,
    viewer: Viewer,
}

impl StoreSource {
    /// What the viewer may read, or the error every page shows until it signs in.
    fn scope(&self) -> Result<ReadScope, AppError> {
        match &self.viewer {
            Viewer::SignedIn(team) => Ok(ReadScope::Team(team.id)),
            Viewer::OpenReads => Ok(ReadScope::Everyone),
            Viewer::SignedOut => Err(AppError::Unauthorized(
                "sign in to see your team's data".into(),
            )),
        }
    }

    /// The object, if the viewer may see it.
    fn visible<T: Owned>(&self, object: T) -> Result<T, AppError> {
        self.scope()?.visible(object)
    }

    /// A run the viewer may see.
    async fn run_visible(&self, id: Uuid) -> Result<store::runs::OwnedRun, AppError> {
        let mut conn = self.pool.acquire().await?;
        self.visible(store::runs::get_owned(&mut conn, id).await?)
    }
}

fn source_error(e: AppError) -> SourceError {
    // The field the API's own error body names (a bad field, a missing reference, a conflict).
    let field = match &e {
        AppError::Unauthorized(_) => Some("authorization".to_string()),
        other => other.body().field,
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
    fn viewer(&self) -> Viewer {
        self.viewer.clone()
    }
    fn projects(&self) -> SourceFuture<'_, Vec<Project>> {
        boxed(async move { store::projects::list(&self.pool, self.scope()?.team()).await })
    }
    fn runs(&self, filter: RunFilter) -> SourceFuture<'_, RunPage> {
        boxed(async move {
            let Some(team_id) = self.scope()?.narrow(filter.team_id) else {
                return Ok(RunPage {
                    runs: Vec::new(),
                    total: 0,
                });
            };
            store::runs::list(&self.pool, &RunFilter { team_id, ..filter }).await
        })
    }
    fn run(&self, id: Uuid) -> SourceFuture<'_, Run> {
        boxed(async move { Ok(self.run_visible(id).await?.run) })
    }
    fn project(&self, id: Uuid) -> SourceFuture<'_, Project> {
        boxed(async move { self.visible(store::projects::get(&self.pool, id).await?) })
    }
    fn metric_summaries(&self, run_id: Uuid) -> SourceFuture<'_, Vec<MetricSummary>> {
        boxed(async move {
            self.run_visible(run_id).await?;
            store::metrics::summaries(&self.pool, run_id).await
        })
    }
    fn artifacts(&self, run_id: Uuid) -> SourceFuture<'_, Vec<ArtifactInfo>> {
        boxed(async move {
            self.run_visible(run_id).await?;
            self.artifacts.list_all(run_id).await
        })
    }
    fn series(&self, run_id: Uuid, key: String) -> SourceFuture<'_, MetricSeries> {
        boxed(async move {
            self.run_visible(run_id).await?;
            store::metrics::downsample(&self.pool, run_id, &key, CHART_BUCKETS).await
        })
    }
    fn completion_steps(&self, run_id: Uuid) -> SourceFuture<'_, Vec<i64>> {
        boxed(async move {
            self.run_visible(run_id).await?;
            store::completions::steps(&self.pool, run_id).await
        })
    }
    fn completions(&self, run_id: Uuid, step: i64) -> SourceFuture<'_, Vec<CompletionRecord>> {
        boxed(async move {
            self.run_visible(run_id).await?;
            store::completions::list(&self.pool, run_id, Some(step), 0, 1000).await
        })
    }
    fn evals(&self) -> SourceFuture<'_, Vec<Eval>> {
        boxed(async move {
            let team = self.scope()?.team();
            store::evals::list(&self.pool, team, None, None, EVALS_SHOWN).await
        })
    }
    fn eval(&self, id: Uuid) -> SourceFuture<'_, Eval> {
        boxed(async move {
            let mut conn = self.pool.acquire().await?;
            self.visible(store::evals::get(&mut conn, id).await?)
        })
    }
    fn samples(
        &self,
        eval_id: Uuid,
        filter: SampleFilter,
        offset: i64,
        limit: i64,
    ) -> SourceFuture<'_, Vec<ProblemSamples>> {
        boxed(async move {
            let mut conn = self.pool.acquire().await?;
            self.visible(store::evals::get(&mut conn, eval_id).await?)?;
            drop(conn);
            store::evals::samples(&self.pool, eval_id, filter, offset, limit).await
        })
    }
    fn leaderboard(&self, team_id: Option<Uuid>) -> SourceFuture<'_, Vec<LeaderboardRow>> {
        boxed(async move {
            match self.scope()?.narrow(team_id) {
                Some(team) => store::evals::leaderboard(&self.pool, team).await,
                None => Ok(Vec::new()),
            }
        })
    }
    fn teams(&self) -> SourceFuture<'_, Vec<Team>> {
        boxed(async move {
            self.scope()?;
            match &self.viewer {
                Viewer::SignedIn(team) => Ok(vec![team.clone()]),
                _ => store::teams::list(&self.pool).await,
            }
        })
    }
    fn datasets(&self) -> SourceFuture<'_, Vec<Dataset>> {
        boxed(async move { store::datasets::list(&self.pool, self.scope()?.team()).await })
    }
    fn dataset(&self, id: Uuid) -> SourceFuture<'_, Dataset> {
        boxed(async move { self.visible(store::datasets::get(&self.pool, id).await?) })
    }
    fn dataset_rows(&self, id: Uuid, offset: i64, limit: i64) -> SourceFuture<'_, DatasetRows> {
        boxed(async move {
            self.visible(store::datasets::get(&self.pool, id).await?)?;
            store::datasets::rows(&self.pool, id, offset, limit).await
        })
    }
    fn models(&self) -> SourceFuture<'_, Vec<Model>> {
        boxed(async move { store::models::list(&self.pool, self.scope()?.team()).await })
    }
    fn jobs(&self) -> SourceFuture<'_, Vec<Job>> {
        boxed(async move {
            let team = self.scope()?.team();
            store::jobs::list(&self.pool, team, None, JOBS_SHOWN).await
        })
    }
    fn workers(&self) -> SourceFuture<'_, Vec<Worker>> {
        boxed(async move { store::workers::list(&self.pool, self.scope()?.team()).await })
    }
    fn submit(&self, job: SubmitJob) -> SourceFuture<'_, Job> {
        boxed(async move {
            let Viewer::SignedIn(team) = &self.viewer else {
                return Err(AppError::Unauthorized(
                    "sign in to submit jobs for your team".into(),
                ));
            };
            store::jobs::queue(&self.pool, team.id, &job).await
        })
    }
}
