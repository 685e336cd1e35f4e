//! `/api/v1/openapi.json`: the machine-readable contract of `/api/v1`.

use crate::routes::{datasets, evals, events, jobs, metrics, models, projects, runs, workers};
use crate::state::AppState;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The OpenAPI document, assembled from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Crucible API", description = "Track, evaluate and train reasoning LLMs the MiMo way."),
    paths(
        crate::routes::health,
        projects::create, projects::list, projects::show,
        runs::create, runs::list, runs::show, runs::update, runs::log_params, runs::set_tags, runs::delete_tag, runs::upload_completions, runs::list_completions,
        metrics::log, metrics::log_bulk, metrics::summaries, metrics::history, metrics::series,
        datasets::import, datasets::list, datasets::show, datasets::rows,
        models::register, models::list, models::show,
        jobs::submit, jobs::list, jobs::show, jobs::cancel, jobs::heartbeat, jobs::complete,
        workers::register, workers::list, workers::lease,
        evals::list, evals::show, evals::samples, evals::upload_samples, evals::upload_scores, evals::leaderboard,
        events::events,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the handlers' `security(...)` refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("crc_…")
                    .build(),
            ),
        );
    }
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
