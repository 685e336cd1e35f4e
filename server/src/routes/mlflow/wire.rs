//! MLflow's wire JSON: statuses, experiments and runs as its client expects them.

use crate::error::AppError;
use crate::store::metrics;
use chrono::{DateTime, Utc};
use crucible_types::{Project, Run, RunStatus, StringMap};
use serde_json::{Value, json};

/// MLflow keeps the run name in this tag as well as in `run_name`.
pub(super) const RUN_NAME_TAG: &str = "mlflow.runName";

pub(super) fn status_to_mlflow(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Queued => "SCHEDULED",
        RunStatus::Running => "RUNNING",
        RunStatus::Finished => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Killed => "KILLED",
    }
}

pub(super) fn status_from_mlflow(s: &str) -> Result<RunStatus, AppError> {
    Ok(match s {
        "SCHEDULED" => RunStatus::Queued,
        "RUNNING" => RunStatus::Running,
        "FINISHED" => RunStatus::Finished,
        "FAILED" => RunStatus::Failed,
        "KILLED" => RunStatus::Killed,
        other => {
            return Err(AppError::invalid(
                "status",
                format!("unknown MLflow run status {other:?}"),
            ));
        }
    })
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn experiment_json(p: &Project) -> Value {
    json!({
        "experiment_id": p.id.to_string(),
        "name": p.name,
        "artifact_location": format!("crucible:/projects/{}", p.id),
        "lifecycle_stage": "active",
        "creation_time": ms(p.created_at),
        "last_update_time": ms(p.created_at),
        "tags": [],
    })
}

fn kv_list(map: &StringMap) -> Vec<Value> {
    map.iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

pub(super) fn run_info_json(r: &Run) -> Value {
    json!({
        "run_id": r.id.to_string(),
        "run_uuid": r.id.to_string(),
        "run_name": r.name,
        "experiment_id": r.project_id.to_string(),
        "user_id": "",
        "status": status_to_mlflow(r.status),
        "start_time": ms(r.started_at.unwrap_or(r.created_at)),
        "end_time": r.finished_at.map(ms),
        // Resolved by MLflow's client against the tracking server: `/api/2.0/mlflow-artifacts/…`.
        "artifact_uri": format!("mlflow-artifacts:/{}/artifacts", r.id),
        "lifecycle_stage": "active",
    })
}

pub(super) fn run_json(r: &Run, latest: &[metrics::LatestPoint]) -> Value {
    let mut tags = r.tags.clone();
    tags.entry(RUN_NAME_TAG.to_string())
        .or_insert_with(|| r.name.clone());
    let metrics: Vec<Value> = latest
        .iter()
        .map(|m| json!({ "key": m.key, "value": m.value, "timestamp": m.timestamp_ms, "step": m.step }))
        .collect();
    json!({
        "info": run_info_json(r),
        "data": { "metrics": metrics, "params": kv_list(&r.params), "tags": kv_list(&tags) },
    })
}
