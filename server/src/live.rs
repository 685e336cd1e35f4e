//! Live updates through Postgres LISTEN/NOTIFY, so every server replica sees every write.
//! Writers notify inside their transaction (delivered only on commit); one listener task per
//! server fans events out to SSE subscribers. Each notification carries the team of the event's
//! project, so a subscriber hears only its own team's events.

use crate::error::Result;
use crate::store::runs;
use crucible_types::{Job, LiveEvent, Run};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The Postgres channel Crucible's events travel on.
pub const CHANNEL: &str = "crucible_events";

/// An event with the team that may see it, as it travels through Postgres and the fan-out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamEvent {
    /// The team owning the event's project.
    pub team_id: Uuid,
    /// The event subscribers receive.
    pub event: LiveEvent,
}

/// Queues `event` for delivery when the surrounding transaction commits, stamped with the team
/// of its project.
pub async fn notify(conn: &mut PgConnection, event: &LiveEvent) -> Result<()> {
    let payload = serde_json::to_value(event).unwrap_or_default();
    sqlx::query(
        "SELECT pg_notify($1, json_build_object('team_id', team_id, 'event', $2::json)::text)
         FROM projects WHERE id = $3",
    )
    .bind(CHANNEL)
    .bind(payload)
    .bind(event.project_id())
    .execute(conn)
    .await?;
    Ok(())
}

/// Tells live subscribers that a run appeared or changed state.
pub async fn run_updated(conn: &mut PgConnection, run: &Run) -> Result<()> {
    let event = LiveEvent::RunUpdated {
        run_id: run.id,
        project_id: run.project_id,
        status: run.status,
    };
    notify(conn, &event).await
}

/// Tells live subscribers about the job's run, whose status a job transition may have changed.
pub async fn job_run_updated(conn: &mut PgConnection, job: &Job) -> Result<()> {
    if let Some(run_id) = job.run_id {
        let run = runs::get_owned(conn, run_id).await?.run;
        run_updated(conn, &run).await?;
    }
    Ok(())
}

/// Buffer of the in-process fan-out; a subscriber that falls this far behind skips ahead.
const FANOUT_CAPACITY: usize = 1024;

/// Starts the listener task and returns the sender that SSE handlers subscribe to.
pub fn spawn_listener(pool: PgPool) -> broadcast::Sender<TeamEvent> {
    let (tx, _) = broadcast::channel(FANOUT_CAPACITY);
    let sender = tx.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&pool, &sender).await {
                tracing::warn!(error = %e, "live-update listener lost its connection; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tx
}

async fn listen(pool: &PgPool, sender: &broadcast::Sender<TeamEvent>) -> Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let n = listener.recv().await?;
        match serde_json::from_str::<TeamEvent>(n.payload()) {
            // No subscribers is fine: the event is simply not needed.
            Ok(event) => drop(sender.send(event)),
            Err(e) => tracing::warn!(error = %e, "ignoring malformed live event"),
        }
    }
}
