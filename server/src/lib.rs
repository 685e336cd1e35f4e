//! Crucible's server: the `/api/v1` REST API (with its OpenAPI document), the MLflow-compatible
//! subset, live updates over SSE and the leptos dashboard, all over Postgres through sqlx. It never
//! compiles candle: workers talk to it over HTTP.

pub mod artifacts;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod live;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod store;
pub mod telemetry;

use axum::Router;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use state::AppState;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// The schema, applied at start-up and by `#[sqlx::test]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The whole HTTP application — REST API, MLflow subset and the dashboard at `/`; `main` and the
/// tests build it the same way.
pub fn app(state: AppState) -> Router {
    let dashboard = dashboard::router(state.clone(), dashboard::find_site_root());
    let telemetry = state.telemetry.clone();
    let app = Router::new()
        .nest("/api/v1", routes::api_v1())
        .nest("/api/2.0/mlflow", routes::mlflow::router())
        // MLflow's client also uses the ajax-api prefix for a few calls.
        .nest("/ajax-api/2.0/mlflow", routes::mlflow::router())
        // MLflow's artifact proxy, where `mlflow-artifacts:` URIs resolve.
        .nest(
            "/api/2.0/mlflow-artifacts",
            routes::mlflow::artifacts::router(),
        )
        .nest(
            "/ajax-api/2.0/mlflow-artifacts",
            routes::mlflow::artifacts::router(),
        )
        .route("/metrics", axum::routing::get(routes::prometheus::scrape))
        .with_state(state)
        .merge(dashboard)
        .route_layer(axum::middleware::from_fn(telemetry::tag_route));
    with_error_layers(app).layer(axum::middleware::from_fn_with_state(
        telemetry,
        telemetry::record_requests,
    ))
}

/// The layers every face of the server (REST, MLflow, dashboard) shares: a panic answers 500
/// instead of dropping the connection, every 5xx is logged once with its cause, requests are
/// traced (by path, never with their query).
pub fn with_error_layers(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(error::log_server_errors))
        // The span names the path only: a query string can carry a one-time sign-in code, and
        // no secret is ever logged.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
            },
        ))
}

/// State for `pool`, with the live-update listener started. `CRUCIBLE_LEASE_SECONDS` overrides
/// the job lease length; `CRUCIBLE_OPEN_READS=1` lets requests without a token read every team's
/// objects (a deliberate choice of the deployment: reads are team-private otherwise); artifacts
/// go where [`artifacts_from_env`] says.
pub fn state(pool: PgPool) -> Result<AppState, artifacts::OpenError> {
    let lease_seconds = std::env::var("CRUCIBLE_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(state::DEFAULT_LEASE_SECONDS);
    let mut state = state_with_lease(pool, lease_seconds)?;
    state.open_reads = std::env::var("CRUCIBLE_OPEN_READS").is_ok_and(|v| v == "1" || v == "true");
    if state.open_reads {
        tracing::warn!(
            "CRUCIBLE_OPEN_READS is set: anyone who can reach the server reads every team's data"
        );
    }
    Ok(state)
}

/// State with an explicit lease length and team-private reads (tests shorten the lease).
pub fn state_with_lease(
    pool: PgPool,
    lease_seconds: u32,
) -> Result<AppState, artifacts::OpenError> {
    let artifacts = artifacts_from_env()?;
    tracing::info!(store = artifacts.location(), "run artifacts");
    let live = live::spawn_listener(pool.clone());
    Ok(AppState {
        pool,
        live,
        lease_seconds,
        open_reads: false,
        telemetry: Default::default(),
        artifacts: std::sync::Arc::new(artifacts),
    })
}

/// The artifact store: `CRUCIBLE_ARTIFACTS` (a `file:///…` folder or `memory://`), else the folder
/// `artifacts` under Crucible's home (`CRUCIBLE_HOME`, else `~/.local/share/crucible`);
/// `CRUCIBLE_MAX_ARTIFACT_BYTES` caps one upload (16 GiB by default).
pub fn artifacts_from_env() -> Result<artifacts::Artifacts, artifacts::OpenError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = var("CRUCIBLE_ARTIFACTS").unwrap_or_else(|| {
        let home = var("CRUCIBLE_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(var("HOME").unwrap_or_else(|| "/tmp".into()))
                    .join(".local/share/crucible")
            });
        format!("file://{}", home.join("artifacts").display())
    });
    let max_bytes = var("CRUCIBLE_MAX_ARTIFACT_BYTES")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(artifacts::DEFAULT_MAX_ARTIFACT_BYTES);
    artifacts::Artifacts::open(&url, max_bytes)
}

/// Connects to Postgres and brings the schema up to date. Every session commits synchronously
/// whatever the database's own setting, so whatever the API acknowledged is on disk.
pub async fn connect(database_url: &str) -> Result<PgPool, sqlx::Error> {
    let options = database_url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .options([("synchronous_commit", "on")]);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Serves the application on `listener` until the process is stopped.
pub async fn serve(listener: tokio::net::TcpListener, pool: PgPool) -> std::io::Result<()> {
    serve_state(listener, state(pool).map_err(std::io::Error::other)?).await
}

/// Serves with a prepared state (tests shorten the lease).
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: AppState,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Pages stream in several chunks: without TCP_NODELAY, Nagle's algorithm and the client's
    // delayed ACK hold each page back by ~40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app(state)).await
}
