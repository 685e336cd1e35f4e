//! Shared state of every handler: the pool and the live-event fan-out.

use crate::live::TeamEvent;
use crate::telemetry::Telemetry;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Cloned into every handler; the server itself keeps no other state, so replicas can share one Postgres.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Events received through Postgres LISTEN, fanned out to SSE subscribers.
    pub live: broadcast::Sender<TeamEvent>,
    /// How long a job lease lasts without a heartbeat before the job returns to the queue.
    pub lease_seconds: u32,
    /// Whether a request without a token may read every team's objects (`CRUCIBLE_OPEN_READS=1`);
    /// off by default: reads are team-private.
    pub open_reads: bool,
    /// This replica's Prometheus metrics (`GET /metrics`).
    pub telemetry: Arc<Telemetry>,
    /// Where run artifacts are stored (shared by every replica when it is a shared store).
    pub artifacts: Arc<crate::artifacts::Artifacts>,
}

/// Default lease: long enough to ride out a slow upload, short enough that a dead worker's job
/// restarts within a minute.
pub const DEFAULT_LEASE_SECONDS: u32 = 30;
