//! Metric history as MLflow's client and UI read it: `metrics/get-history` (one run, every
//! point) and `metrics/get-history-bulk-interval` (several runs on one chart, sampled to a few
//! thousand steps), with MLflow's parameters, limits and errors.

use super::{Ml, MlResult, RunRef, parse_run_id};
use crate::auth::AuthTeam;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::routes::owned_run;
use crate::state::AppState;
use crate::store::metrics;
use axum::Json;
use axum::extract::{RawQuery, State};
use crucible_types::MetricHistory;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Most runs one bulk-interval call may name, as in MLflow.
const MAX_RUNS: usize = 100;
/// Most sampled steps per run (`max_results`), and its default, as in MLflow.
const MAX_RESULTS_PER_RUN: usize = 2500;

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    #[serde(flatten)]
    run: RunRef,
    metric_key: String,
}

/// The run's whole history of one metric (an unknown key is an empty history, as in MLflow).
pub(super) async fn get_history(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    Ml(ApiQuery(q)): Ml<ApiQuery<HistoryQuery>>,
) -> MlResult<Json<Value>> {
    let id = q.run.id()?;
    let mut conn = s.pool.acquire().await?;
    owned_run(&mut conn, &auth, id).await?;
    let points = history_or_empty(&s, id, &q.metric_key)
        .await?
        .map(|h| points_json(&h, None, |_| true))
        .unwrap_or_default();
    Ok(Json(json!({ "metrics": points })))
}

/// A bulk-interval request, read from a query string that repeats `run_ids`.
#[derive(Debug, PartialEq)]
struct BulkIntervalQuery {
    run_ids: Vec<Uuid>,
    metric_key: String,
    /// Both ends or neither, as MLflow requires.
    range: Option<(i64, i64)>,
    max_results: usize,
}

impl BulkIntervalQuery {
    /// Parses and checks the query the way MLflow does; an error names the parameter.
    fn parse(query: &str) -> Result<Self, AppError> {
        let mut run_ids = Vec::new();
        let (mut metric_key, mut start, mut end, mut max_results) = (None, None, None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "run_ids" => run_ids.push(parse_run_id(&value)?),
                "metric_key" => metric_key = Some(value.into_owned()),
                "start_step" => start = Some(integer("start_step", &value)?),
                "end_step" => end = Some(integer("end_step", &value)?),
                "max_results" => max_results = Some(integer("max_results", &value)?),
                _ => {}
            }
        }
        if run_ids.is_empty() {
            return Err(AppError::invalid(
                "run_ids",
                "at least one run_ids is required",
            ));
        }
        if run_ids.len() > MAX_RUNS {
            return Err(AppError::invalid(
                "run_ids",
                format!("at most {MAX_RUNS} run_ids per call; got {}", run_ids.len()),
            ));
        }
        let metric_key = metric_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| AppError::invalid("metric_key", "metric_key is required"))?;
        let range = match (start, end) {
            (None, None) => None,
            (Some(start), Some(end)) if start <= end => Some((start, end)),
            (Some(start), Some(end)) => {
                return Err(AppError::invalid(
                    "end_step",
                    format!("end_step {end} is before start_step {start}"),
                ));
            }
            (Some(_), None) => {
                return Err(AppError::invalid(
                    "end_step",
                    "start_step needs end_step too",
                ));
            }
            (None, Some(_)) => {
                return Err(AppError::invalid(
                    "start_step",
                    "end_step needs start_step too",
                ));
            }
        };
        let max_results = match max_results {
            None => MAX_RESULTS_PER_RUN,
            Some(n) if (1..=MAX_RESULTS_PER_RUN as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(AppError::invalid(
                    "max_results",
                    format!("max_results must be between 1 and {MAX_RESULTS_PER_RUN}"),
                ));
            }
        };
        Ok(Self {
            run_ids,
            metric_key,
            range,
            max_results,
        })
    }
}

fn integer(name: &str, value: &str) -> Result<i64, AppError> {
    value
        .trim()
        .parse()
        .map_err(|_| AppError::invalid(name, format!("{name} must be an integer, not {value:?}")))
}

/// The chart data of MLflow's UI: for every run (in the order named), its points at a common
/// set of sampled steps, so that lines of several runs share their x positions.
pub(super) async fn get_history_bulk_interval(
    State(s): State<AppState>,
    Ml(auth): Ml<AuthTeam>,
    RawQuery(query): RawQuery,
) -> MlResult<Json<Value>> {
    let q = BulkIntervalQuery::parse(query.as_deref().unwrap_or_default())?;
    let mut conn = s.pool.acquire().await?;
    let mut histories = Vec::with_capacity(q.run_ids.len());
    for &id in &q.run_ids {
        owned_run(&mut conn, &auth, id).await?;
        histories.push((id, history_or_empty(&s, id, &q.metric_key).await?));
    }
    drop(conn);
    let steps: Vec<&[i64]> = histories
        .iter()
        .map(|(_, h)| h.as_ref().map_or(&[][..], |h| h.steps.as_slice()))
        .collect();
    let sampled = sampled_steps(&steps, q.range, q.max_results);
    let points: Vec<Value> = histories
        .iter()
        .filter_map(|(id, h)| h.as_ref().map(|h| (id, h)))
        .flat_map(|(id, h)| points_json(h, Some(*id), |step| sampled.contains(&step)))
        .collect();
    Ok(Json(json!({ "metrics": points })))
}

/// The history of `key`, or `None` when the run never logged it.
async fn history_or_empty(
    s: &AppState,
    run_id: Uuid,
    key: &str,
) -> Result<Option<MetricHistory>, AppError> {
    match metrics::history(&s.pool, run_id, key).await {
        Ok(h) => Ok(Some(h)),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// MLflow's metric objects for the points of `h` whose step `keep` accepts, with `run_id` when
/// the answer mixes runs.
fn points_json(h: &MetricHistory, run_id: Option<Uuid>, keep: impl Fn(i64) -> bool) -> Vec<Value> {
    (0..h.steps.len())
        .filter(|&i| keep(h.steps[i]))
        .map(|i| {
            let mut point = json!({ "key": h.key, "value": h.values[i], "timestamp": h.timestamps_ms[i], "step": h.steps[i] });
            if let Some(id) = run_id {
                point["run_id"] = json!(id.to_string());
            }
            point
        })
        .collect()
}

/// The steps a bulk-interval chart shows: at most `max` evenly spaced among the distinct steps
/// (of all runs) in `range` — always including the last — plus each run's first and last step
/// in range, so no line loses its ends. Without a range it spans step 0 to the last step logged.
fn sampled_steps(runs: &[&[i64]], range: Option<(i64, i64)>, max: usize) -> BTreeSet<i64> {
    let all: BTreeSet<i64> = runs.iter().flat_map(|r| r.iter().copied()).collect();
    let (start, end) = range.unwrap_or((0, all.last().copied().unwrap_or(0)));
    let in_range: Vec<i64> = all.range(start..=end).copied().collect();
    let mut sampled: BTreeSet<i64> = if in_range.len() <= max {
        in_range.iter().copied().collect()
    } else {
        let stride = in_range.len() as f64 / max as f64;
        (0..max)
            .map(|i| in_range[(i as f64 * stride) as usize])
            .chain(in_range.last().copied())
            .collect()
    };
    for run in runs {
        let mut own = run.iter().copied().filter(|s| (start..=end).contains(s));
        let first = own.next();
        sampled.extend(first.into_iter().chain(own.next_back().or(first)));
    }
    sampled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_steps_are_all_kept_and_many_are_thinned_evenly() {
        let dense: Vec<i64> = (0..1000).collect();
        assert_eq!(sampled_steps(&[&dense], None, 2500).len(), 1000);
        let thin = sampled_steps(&[&dense], None, 10);
        assert_eq!(
            thin.into_iter().collect::<Vec<_>>(),
            vec![0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
        );
    }

    #[test]
    fn every_run_keeps_its_ends_within_the_range() {
        let long: Vec<i64> = (0..100).collect();
        let short = [3, 5, 41];
        let steps = sampled_steps(&[&long, &short], Some((4, 60)), 4);
        // 57 distinct steps in 4..=60 thinned to 4 (stride 14.25) plus the last, then the
        // short run's first and last in range (5, 41) and the long run's (4, 60).
        assert_eq!(
            steps.into_iter().collect::<Vec<_>>(),
            vec![4, 5, 18, 32, 41, 46, 60]
        );
    }

    #[test]
    fn the_query_is_checked_like_mlflow_checks_it() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let q = BulkIntervalQuery::parse(&format!(
            "run_ids={a}&run_ids={}&metric_key=loss&start_step=2&end_step=9&max_results=50",
            b.simple()
        ))
        .unwrap();
        assert_eq!(
            q,
            BulkIntervalQuery {
                run_ids: vec![a, b],
                metric_key: "loss".into(),
                range: Some((2, 9)),
                max_results: 50
            }
        );
        let field = |query: &str| match BulkIntervalQuery::parse(query) {
            Err(AppError::Invalid { field, .. }) => field,
            other => panic!("{query}: {other:?}"),
        };
        assert_eq!(field("metric_key=loss"), "run_ids");
        assert_eq!(field(&format!("run_ids={a}")), "metric_key");
        assert_eq!(
            field(&format!("run_ids={a}&metric_key=l&start_step=3")),
            "end_step"
        );
        assert_eq!(
            field(&format!("run_ids={a}&metric_key=l&end_step=3")),
            "start_step"
        );
        assert_eq!(
            field(&format!("run_ids={a}&metric_key=l&start_step=5&end_step=3")),
            "end_step"
        );
        assert_eq!(
            field(&format!("run_ids={a}&metric_key=l&max_results=0")),
            "max_results"
        );
        assert_eq!(
            field(&format!("run_ids={a}&metric_key=l&max_results=2501")),
            "max_results"
        );
        assert_eq!(
            field(&format!("run_ids={a}&metric_key=l&start_step=x&end_step=3")),
            "start_step"
        );
        let many: String = (0..=MAX_RUNS).map(|_| format!("run_ids={a}&")).collect();
        assert_eq!(field(&format!("{many}metric_key=l")), "run_ids");
    }
}
