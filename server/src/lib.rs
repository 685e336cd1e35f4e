//! Crucible's server: the `/api/v1` REST API (with its OpenAPI document), the MLflow-compatible
//! subset, live updates over SSE and the leptos dashboard, all over Postgres through sqlx. It never
//! compiles candle: workers talk to it over HTTP.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod live;
pub mod routes;
pub mod state;
pub mod store;

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
    let dashboard = dashboard::router(state.pool.clone(), dashboard::find_site_root());
    let app = Router::new()
        .nest("/api/v1", routes::api_v1())
        .nest("/api/2.0/mlflow", routes::mlflow::router())
        // MLflow's client also uses the ajax-api prefix for a few calls.
        .nest("/ajax-api/2.0/mlflow", routes::mlflow::router())
        .with_state(state)
        .merge(dashboard);
    with_error_layers(app)
}

/// The layers every face of the server (REST, MLflow, dashboard) shares: a panic answers 500
/// instead of dropping the connection, every 5xx is logged once with its cause, requests are traced.
pub fn with_error_layers(router: Router) -> Router {
    router
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(error::log_server_errors))
        .layer(TraceLayer::new_for_http())
}

/// State for `pool`, with the live-update listener started. `CRUCIBLE_LEASE_SECONDS` overrides
/// the job lease length.
pub fn state(pool: PgPool) -> AppState {
    let lease_seconds = std::env::var("CRUCIBLE_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(state::DEFAULT_LEASE_SECONDS);
    state_with_lease(pool, lease_seconds)
}

/// State with an explicit lease length (tests shorten it).
pub fn state_with_lease(pool: PgPool, lease_seconds: u32) -> AppState {
    let live = live::spawn_listener(pool.clone());
    AppState {
        pool,
        live,
        lease_seconds,
    }
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
    serve_state(listener, state(pool)).await
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
