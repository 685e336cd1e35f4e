//! `/api/v1/events`: server-sent events for dashboards and CLIs that follow runs live.

use crate::auth::Viewer;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use std::convert::Infallible;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// Narrows the stream to one run or one project; none means everything.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only events of this run.
    pub run_id: Option<Uuid>,
    /// Only events of this project.
    pub project_id: Option<Uuid>,
}

/// Streams the caller's team's `LiveEvent`s as SSE `data:` lines (event name = the event's `type`).
#[utoipa::path(get, path = "/api/v1/events", params(EventFilter),
    responses((status = 200, content_type = "text/event-stream", body = crucible_types::LiveEvent)))]
pub async fn events(
    State(s): State<AppState>,
    Viewer(scope): Viewer,
    ApiQuery(f): ApiQuery<EventFilter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(s.live.subscribe()).filter_map(move |item| {
        // A lagging subscriber skips what it missed; the page re-reads state on the next event.
        let crate::live::TeamEvent { team_id, event } = item.ok()?;
        if !scope.sees(team_id)
            || f.run_id.is_some_and(|id| id != event.run_id())
            || f.project_id.is_some_and(|id| id != event.project_id())
        {
            return None;
        }
        let kind = match &event {
            crucible_types::LiveEvent::RunUpdated { .. } => "run_updated",
            crucible_types::LiveEvent::MetricsLogged { .. } => "metrics_logged",
        };
        Event::default().event(kind).json_data(&event).ok().map(Ok)
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
