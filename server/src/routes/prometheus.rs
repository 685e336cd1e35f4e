//! `GET /metrics`: this replica's Prometheus metrics (see [`crate::telemetry`]).

use crate::error::Result;
use crate::state::AppState;
use crate::store::{jobs, workers};
use crate::telemetry::OPENMETRICS;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

/// The OpenMetrics page Prometheus scrapes; no token, as Prometheus sends none (it holds
/// aggregate counts only).
pub async fn scrape(State(s): State<AppState>) -> Result<Response> {
    let (jobs, online) = (
        jobs::counts(&s.pool).await?,
        workers::online_count(&s.pool).await?,
    );
    let page = s
        .telemetry
        .page(jobs, online, s.live.receiver_count())
        .await?;
    Ok(([(CONTENT_TYPE, OPENMETRICS)], page).into_response())
}
