//! Datasets: versioned, content-hashed sets of problems.

use crate::tracking::wire_enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

wire_enum! {
    /// The shape of a dataset's rows, which decides the verifier that scores them.
    DatasetKind {
        /// `problem` + `answer` (string), optional `solution`.
        Math => "math",
        /// A prompt (`prompt`/`problem`/`question`) + `tests` (stdin/stdout or asserts).
        Code => "code",
        /// `question` + `choices` + `answer` (a label).
        Choice => "choice",
        /// Any JSON object (SFT/pretraining text).
        Text => "text",
    }
}

/// One version of a named dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dataset {
    /// Dataset version id.
    pub id: Uuid,
    /// Owning team.
    pub team_id: Uuid,
    /// Name shared by all versions.
    pub name: String,
    /// 1, 2, … in import order.
    pub version: i32,
    /// Row shape.
    pub kind: DatasetKind,
    /// SHA-256 of the canonical rows: the same content always gets the same version.
    pub content_hash: String,
    /// Number of rows.
    pub row_count: i32,
    /// Where it came from (file name, URL), as given at import.
    pub source: Option<String>,
    /// Import time.
    pub created_at: DateTime<Utc>,
}

/// Query of `POST /api/v1/datasets/import`; the body is the JSONL itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportDatasetQuery {
    /// Dataset name.
    pub name: String,
    /// Row shape to validate against.
    pub kind: DatasetKind,
    /// Where the rows came from.
    #[serde(default)]
    pub source: Option<String>,
}

/// Written by hand: the derive drops `required` from a parameter with its own schema, and the
/// name follows [`crate::check_name`].
#[cfg(feature = "openapi")]
impl utoipa::IntoParams for ImportDatasetQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        use utoipa::openapi::{Ref, RefOr, Required};
        let query = |name: &str, required, description: &str, schema: RefOr<Schema>| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(required)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        let text = ObjectBuilder::new().schema_type(Type::String).build();
        vec![
            query(
                "name",
                Required::True,
                "Dataset name.",
                RefOr::T(Schema::Object(crate::validate::name_schema())),
            ),
            query(
                "kind",
                Required::True,
                "Row shape to validate against.",
                RefOr::Ref(Ref::from_schema_name("DatasetKind")),
            ),
            query(
                "source",
                Required::False,
                "Where the rows came from.",
                RefOr::T(Schema::Object(text)),
            ),
        ]
    }
}

/// Result of an import: the version, and whether it already existed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportDatasetResult {
    /// The (new or existing) version.
    pub dataset: Dataset,
    /// False when identical content had been imported before under this name.
    pub created: bool,
}

/// A page of rows for previews.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetRows {
    /// Index of the first row returned.
    pub offset: i64,
    /// Rows as stored.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub rows: Vec<serde_json::Value>,
    /// Rows in the dataset.
    pub total: i64,
}
