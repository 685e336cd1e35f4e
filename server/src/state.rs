//! Shared state of every handler: the pool and the live-event fan-out.

use crucible_types::LiveEvent;
use sqlx::PgPool;
use tokio::sync::broadcast;

/// Cloned into every handler; the server itself keeps no other state, so replicas can share one Postgres.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Events received through Postgres LISTEN, fanned out to SSE subscribers.
    pub live: broadcast::Sender<LiveEvent>,
}
