//! Projects, runs and metrics: the experiment-tracking contract.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// Declares a string-valued enum whose wire form is its snake_case name; the store keeps the same text.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and database spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::tracking::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::tracking::UnknownVariant {
                        value: s.to_string(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}
pub(crate) use wire_enum;

/// A string that names no variant of a wire enum; the message lists the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariant {
    /// What was given.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value {:?}; expected one of {}",
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownVariant {}

wire_enum! {
    /// What produced a run, so the dashboard can group RL, SFT and eval work apart.
    RunKind {
        Eval => "eval",
        Generate => "generate",
        Sft => "sft",
        Rl => "rl",
        Pretrain => "pretrain",
        /// Logged from outside Crucible (scripts, the MLflow client).
        External => "external",
    }
}

wire_enum! {
    /// A run's lifecycle: `queued → running → finished | failed | killed`.
    RunStatus {
        Queued => "queued",
        Running => "running",
        Finished => "finished",
        Failed => "failed",
        Killed => "killed",
    }
}

impl RunStatus {
    /// Terminal states get a finish time and never go back to running.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
        )
    }
}

/// Longest param, tag or metric key, in characters (MLflow's limit).
pub const MAX_KEY_CHARS: usize = 250;
/// Longest param or tag value, in characters.
pub const MAX_VALUE_CHARS: usize = 8000;

/// A param, tag or metric key: 1 to [`MAX_KEY_CHARS`] characters, not blank, no control
/// characters.
pub fn check_key(field: &str, key: &str) -> Result<(), crate::Invalid> {
    crate::validate::check_label(field, key, MAX_KEY_CHARS)
}

/// [`check_key`] as JSON Schema.
#[cfg(feature = "openapi")]
pub(crate) fn key_schema() -> utoipa::openapi::schema::Object {
    crate::validate::label_schema(MAX_KEY_CHARS)
}

/// Params and tags are text, as in MLflow, so they compare and filter the same everywhere.
pub type StringMap = BTreeMap<String, String>;

/// A body of params or tags: `{"lr": 0.001, "model": "mimo"}` — scalars become their text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScalarMap(#[serde(deserialize_with = "scalar_map")] pub StringMap);

/// Written by hand: the derive would say "strings", and the server takes numbers and booleans
/// too; keys follow [`check_key`] and string values [`MAX_VALUE_CHARS`].
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ScalarMap {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let value: utoipa::openapi::schema::Schema = OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(MAX_VALUE_CHARS)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .into();
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(crate::validate::label_schema(MAX_KEY_CHARS)))
            .additional_properties(Some(utoipa::openapi::RefOr::T(value)))
            .description(Some(
                "Keys to values; numbers and booleans are stored as their text.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ScalarMap {}

/// A config's scalar settings as run params, nested ones under dotted keys (`optimizer.lr`), so
/// runs made from configs compare side by side in the runs table; lists stay in the run's config.
pub fn config_params(config: &impl Serialize) -> StringMap {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut StringMap) {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Object(fields) => {
                for (k, v) in fields {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
                return;
            }
            serde_json::Value::Null | serde_json::Value::Array(_) => return,
        };
        out.insert(prefix.to_string(), text);
    }
    let mut out = StringMap::new();
    if let Ok(value) = serde_json::to_value(config) {
        walk("", &value, &mut out);
    }
    out
}

/// Accepts strings, numbers and booleans as values; clients rarely stringify hyper-parameters themselves.
pub fn scalar_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StringMap, D::Error> {
    use serde::de::Error;
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(D::Error::custom(format!(
                "value of {k:?} must be a string, number or boolean, not {other}"
            ))),
        })
        .collect()
}

/// A team's folder of runs (MLflow's "experiment").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    /// Project id.
    pub id: Uuid,
    /// Owning team.
    pub team_id: Uuid,
    /// Unique within the team.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/projects`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateProject {
    /// Unique within the team.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::name_schema))]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// One tracked experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    /// Run id.
    pub id: Uuid,
    /// Project the run belongs to.
    pub project_id: Uuid,
    /// Display name.
    pub name: String,
    /// What produced it.
    pub kind: RunKind,
    /// Lifecycle state.
    pub status: RunStatus,
    /// Hyper-parameters: set once, never silently changed.
    pub params: StringMap,
    /// Free labels, changeable at any time.
    pub tags: StringMap,
    /// The run this one belongs under (e.g. an eval of an RL checkpoint).
    pub parent_run_id: Option<Uuid>,
    /// The command line that made the run.
    pub command: Option<String>,
    /// The full config that made the run.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it first entered `running`.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change of any field.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRun {
    /// Project to create the run in.
    pub project_id: Uuid,
    /// Display name; generated when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::optional_name_schema))]
    pub name: Option<String>,
    /// Defaults to `external`.
    #[serde(default)]
    pub kind: Option<RunKind>,
    /// Defaults to `running`.
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// Initial params (numbers and booleans are stored as their text).
    #[serde(default, deserialize_with = "scalar_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = ScalarMap))]
    pub params: StringMap,
    /// Initial tags.
    #[serde(default, deserialize_with = "scalar_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = ScalarMap))]
    pub tags: StringMap,
    /// Parent run (same project).
    #[serde(default)]
    pub parent_run_id: Option<Uuid>,
    /// Command line that made the run.
    #[serde(default)]
    pub command: Option<String>,
    /// Full config.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config: Option<serde_json::Value>,
}

/// Body of `PATCH /api/v1/runs/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateRun {
    /// New status; a terminal run cannot be reopened.
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// New display name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validate::optional_name_schema))]
    pub name: Option<String>,
}

/// A page of runs plus the total that matched, for paginated tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunPage {
    /// The runs on this page.
    pub runs: Vec<Run>,
    /// Runs matching the filters, over all pages.
    pub total: i64,
}

/// One metric observation. `step` orders points; `timestamp` defaults to the server's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricPoint {
    /// Metric name, e.g. `train/loss`.
    #[cfg_attr(feature = "openapi", schema(schema_with = key_schema))]
    pub key: String,
    /// Training step (or any monotone counter), not negative.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub step: i64,
    /// Value; must be finite.
    pub value: f64,
    /// Wall-clock time of the observation, in milliseconds since 1970 (as MLflow and the
    /// history's `timestamps_ms`), between the years 1 and 9999; the server's clock when absent.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = -62135596800000i64, maximum = 253402300799999i64)
    )]
    pub timestamp_ms: Option<i64>,
}

/// The wall times a metric point may carry, in milliseconds since 1970: years 1 to 9999.
pub const TIMESTAMP_MS_RANGE: std::ops::RangeInclusive<i64> =
    -62_135_596_800_000..=253_402_300_799_999;

impl MetricPoint {
    /// The observation's wall time, when it carries one within [`TIMESTAMP_MS_RANGE`].
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.timestamp_ms
            .filter(|ms| TIMESTAMP_MS_RANGE.contains(ms))
            .and_then(DateTime::from_timestamp_millis)
    }
}

/// Body of `POST /api/v1/runs/{id}/metrics` (at most [`MAX_METRIC_BATCH`] points).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogMetrics {
    /// Points in any order; repeats of (key, step) overwrite.
    pub points: Vec<MetricPoint>,
}

/// MLflow's per-call limit, kept so clients written for MLflow batch the same way.
pub const MAX_METRIC_BATCH: usize = 1000;

/// How many points a call stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogMetricsResult {
    /// Points accepted (after collapsing repeats within the call).
    pub accepted: usize,
}

/// A metric key of a run with its latest point, for run tables and chart pickers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricSummary {
    /// Metric name.
    pub key: String,
    /// Number of points.
    pub count: i64,
    /// Highest step seen.
    pub last_step: i64,
    /// Value at the highest step.
    pub last_value: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// A file a run logged (through MLflow's artifact API), as the run page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArtifactInfo {
    /// Path below the run's artifacts, `/`-separated (`plots/loss.png`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Every point of one metric, ordered by step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricHistory {
    /// Metric name.
    pub key: String,
    /// Steps, ascending.
    pub steps: Vec<i64>,
    /// Values, aligned with `steps`.
    pub values: Vec<f64>,
    /// Wall times in milliseconds since the Unix epoch, aligned with `steps`.
    pub timestamps_ms: Vec<i64>,
}

/// One bucket of a downsampled series: enough to draw the line and its min/max band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricBucket {
    /// First step in the bucket.
    pub step_min: i64,
    /// Last step in the bucket.
    pub step_max: i64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Value at `step_max`.
    pub last: f64,
    /// Points in the bucket.
    pub count: i64,
    /// Wall time of the last point, ms since the epoch (for an x-axis by time).
    pub last_time_ms: i64,
}

/// A chart-sized view of a metric: about `buckets` buckets however many points exist.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricSeries {
    /// Metric name.
    pub key: String,
    /// Points in the whole series.
    pub total_points: i64,
    /// Buckets in step order.
    pub buckets: Vec<MetricBucket>,
}

/// A live update pushed over `GET /api/v1/events` (server-sent events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A run was created or its status/name changed.
    RunUpdated {
        /// Run id.
        run_id: Uuid,
        /// Its project.
        project_id: Uuid,
        /// New status.
        status: RunStatus,
    },
    /// New metric points were stored.
    MetricsLogged {
        /// Run id.
        run_id: Uuid,
        /// Its project.
        project_id: Uuid,
        /// Keys that received points.
        keys: Vec<String>,
        /// Highest step among the new points.
        max_step: i64,
        /// Number of points stored.
        count: usize,
    },
}

impl LiveEvent {
    /// The run an event is about, for per-run subscriptions.
    pub fn run_id(&self) -> Uuid {
        match self {
            LiveEvent::RunUpdated { run_id, .. } | LiveEvent::MetricsLogged { run_id, .. } => {
                *run_id
            }
        }
    }

    /// The project an event is about, for per-project subscriptions.
    pub fn project_id(&self) -> Uuid {
        match self {
            LiveEvent::RunUpdated { project_id, .. }
            | LiveEvent::MetricsLogged { project_id, .. } => *project_id,
        }
    }
}

/// A team: the unit that owns tokens, projects, models and leaderboard entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
}

/// Whose objects a reader may see. Reads are team-private: a token (or a dashboard session) sees
/// its own team's objects only, and another team's are "not found", so their existence does not
/// leak. `Everyone` exists only where a deployment opened reads on purpose (`CRUCIBLE_OPEN_READS=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadScope {
    /// One team's objects.
    Team(Uuid),
    /// Every team's objects (an open-reads deployment, read without a token).
    Everyone,
}

impl ReadScope {
    /// The team reads are narrowed to; `None` means all teams.
    pub fn team(self) -> Option<Uuid> {
        match self {
            ReadScope::Team(t) => Some(t),
            ReadScope::Everyone => None,
        }
    }

    /// Whether an object owned by `owner` is visible.
    pub fn sees(self, owner: Uuid) -> bool {
        self.team().is_none_or(|t| t == owner)
    }

    /// A listing's team filter under this scope: the caller's own team whatever was asked, or
    /// `None` when the caller asked for another team's (which it cannot see: an empty listing).
    pub fn narrow(self, requested: Option<Uuid>) -> Option<Option<Uuid>> {
        match (self, requested) {
            (ReadScope::Everyone, r) => Some(r),
            (ReadScope::Team(t), Some(r)) if r != t => None,
            (ReadScope::Team(t), _) => Some(Some(t)),
        }
    }
}

/// Columns a run listing can be sorted by (a `-` before one sorts descending).
pub const RUN_SORT_COLUMNS: &[&str] = &["created_at", "updated_at", "name", "status", "kind"];

/// [`RunFilter::sort`] as JSON Schema: each column, ascending or descending.
#[cfg(feature = "openapi")]
fn run_sort_schema() -> utoipa::openapi::schema::Object {
    let orders = RUN_SORT_COLUMNS
        .iter()
        .flat_map(|c| [c.to_string(), format!("-{c}")]);
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(orders))
        .build()
}

/// Filters, order and page of a run listing.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct RunFilter {
    /// Only runs of this project.
    pub project_id: Option<Uuid>,
    /// Only runs of this team.
    pub team_id: Option<Uuid>,
    /// Only runs of this kind.
    pub kind: Option<RunKind>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// `key:value` — only runs with that tag value (or `key` alone: with that tag).
    pub tag: Option<String>,
    /// Only children of this run.
    pub parent_run_id: Option<Uuid>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// `created_at` (default), `updated_at`, `name`, `status` or `kind`; prefix `-` for descending.
    #[cfg_attr(feature = "openapi", param(schema_with = run_sort_schema))]
    pub sort: Option<String>,
    /// Page size, 1–500 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<i64>,
    /// Rows to skip.
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    pub offset: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_params_flatten_scalars_and_skip_lists() {
        let config = serde_json::json!({
            "steps": 3, "kind": "sft", "optimizer": { "lr": 0.001, "betas": [0.9, 0.95] },
            "resume": true, "note": null
        });
        let params = config_params(&config);
        let got: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("kind", "sft"),
                ("optimizer.lr", "0.001"),
                ("resume", "true"),
                ("steps", "3")
            ]
        );
    }

    #[test]
    fn wire_enums_round_trip_through_text_and_json() {
        for kind in RunKind::ALL {
            assert_eq!(kind.as_str().parse::<RunKind>().unwrap(), *kind);
            assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{kind}\""));
        }
        let err = "paused".parse::<RunStatus>().unwrap_err();
        assert!(
            err.to_string()
                .contains("queued, running, finished, failed, killed")
        );
    }

    #[test]
    fn only_finished_failed_killed_are_terminal() {
        let terminal: Vec<_> = RunStatus::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [&RunStatus::Finished, &RunStatus::Failed, &RunStatus::Killed]
        );
    }
}
