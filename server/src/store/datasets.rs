//! Datasets: JSONL import with per-line validation, content-hash versioning, row previews.

use crate::error::{AppError, Result};
use crucible_types::{Dataset, DatasetKind, DatasetRows, ImportDatasetResult};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

/// Rows per INSERT when storing an import.
const CHUNK: usize = 2_000;

/// Fields that may carry a code problem's statement, in the formats Crucible reads
/// (HumanEval `prompt`, DeepCoder `problem`, MBPP `text`).
const CODE_PROMPT_FIELDS: &[&str] = &["prompt", "problem", "question", "text"];
/// Fields that may carry a code problem's tests (DeepCoder `tests`, HumanEval `test`, MBPP `test_list`).
const CODE_TEST_FIELDS: &[&str] = &["tests", "test", "test_list", "input_output"];

/// Parses and validates JSONL; an error names the 1-based line and the field.
pub fn parse_jsonl(kind: DatasetKind, body: &str) -> Result<Vec<Map<String, Value>>> {
    let mut rows = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let at = |field: &str| format!("line {line_no}: {field}");
        let value: Value = serde_json::from_str(line).map_err(|e| {
            AppError::invalid(
                format!("line {line_no}"),
                format!("line {line_no} is not valid JSON: {e}"),
            )
        })?;
        let Value::Object(row) = value else {
            return Err(AppError::invalid(
                format!("line {line_no}"),
                format!("line {line_no} must be a JSON object"),
            ));
        };
        check_row(kind, &row).map_err(|(field, msg)| {
            AppError::invalid(at(field), format!("line {line_no}: {msg}"))
        })?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(AppError::invalid("body", "the JSONL body has no rows"));
    }
    Ok(rows)
}

fn non_empty_str<'a>(
    row: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, (&'static str, String)> {
    match row.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err((field, format!("field `{field}` must not be empty"))),
        Some(_) => Err((field, format!("field `{field}` must be a string"))),
        None => Err((field, format!("field `{field}` is missing"))),
    }
}

fn check_row(kind: DatasetKind, row: &Map<String, Value>) -> Result<(), (&'static str, String)> {
    match kind {
        DatasetKind::Math => {
            non_empty_str(row, "problem")?;
            match row.get("answer") {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(()),
                Some(Value::Number(_)) => Ok(()),
                Some(_) => Err((
                    "answer",
                    "field `answer` must be a non-empty string or a number".into(),
                )),
                None => Err(("answer", "field `answer` is missing".into())),
            }
        }
        DatasetKind::Code => {
            if !CODE_PROMPT_FIELDS
                .iter()
                .any(|f| matches!(row.get(*f), Some(Value::String(s)) if !s.trim().is_empty()))
            {
                return Err((
                    "prompt",
                    format!(
                        "a code row needs a statement in one of {}",
                        CODE_PROMPT_FIELDS.join(", ")
                    ),
                ));
            }
            if !CODE_TEST_FIELDS
                .iter()
                .any(|f| row.get(*f).is_some_and(|v| !v.is_null()))
            {
                return Err((
                    "tests",
                    format!(
                        "a code row needs tests in one of {}",
                        CODE_TEST_FIELDS.join(", ")
                    ),
                ));
            }
            Ok(())
        }
        DatasetKind::Choice => {
            non_empty_str(row, "question")?;
            let choices = match row.get("choices") {
                Some(Value::Array(c)) if c.len() >= 2 && c.iter().all(Value::is_string) => c.len(),
                Some(_) => {
                    return Err((
                        "choices",
                        "field `choices` must be an array of at least 2 strings".into(),
                    ));
                }
                None => return Err(("choices", "field `choices` is missing".into())),
            };
            let answer = non_empty_str(row, "answer")?;
            let labels: Vec<String> = match row.get("labels") {
                Some(Value::Array(l)) if l.len() == choices && l.iter().all(Value::is_string) => l
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Some(_) => {
                    return Err((
                        "labels",
                        "field `labels` must be strings, one per choice".into(),
                    ));
                }
                None => (0..choices)
                    .map(|i| char::from(b'A' + i.min(25) as u8).to_string())
                    .collect(),
            };
            if labels.iter().any(|l| l == answer) {
                Ok(())
            } else {
                Err((
                    "answer",
                    format!(
                        "answer {answer:?} is not one of the labels {}",
                        labels.join(", ")
                    ),
                ))
            }
        }
        DatasetKind::Text => Ok(()),
    }
}

/// SHA-256 over the canonical (key-sorted) JSON of every row: same content, same hash.
pub fn content_hash(rows: &[Map<String, Value>]) -> String {
    let mut h = Sha256::new();
    for row in rows {
        // serde_json's Map keeps keys sorted, so this serialisation is canonical.
        h.update(serde_json::to_vec(row).unwrap_or_default());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[derive(FromRow)]
struct DatasetRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    version: i32,
    kind: String,
    content_hash: String,
    row_count: i32,
    source: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl TryFrom<DatasetRow> for Dataset {
    type Error = AppError;
    fn try_from(r: DatasetRow) -> Result<Self> {
        Ok(Dataset {
            id: r.id,
            team_id: r.team_id,
            name: r.name,
            version: r.version,
            kind: r
                .kind
                .parse()
                .map_err(|e| AppError::Db(sqlx::Error::Decode(Box::new(e))))?,
            content_hash: r.content_hash,
            row_count: r.row_count,
            source: r.source,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str =
    "id, team_id, name, version, kind, content_hash, row_count, source, created_at";

/// Stores a new version, or returns the existing one with identical content.
pub async fn import(
    conn: &mut PgConnection,
    team_id: Uuid,
    name: &str,
    kind: DatasetKind,
    source: Option<&str>,
    rows: &[Map<String, Value>],
) -> Result<ImportDatasetResult> {
    crucible_types::check_name("name", name)?;
    let hash = content_hash(rows);
    // Serialise imports of one name so two concurrent imports cannot take the same version number.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))")
        .bind(team_id.to_string())
        .bind(name)
        .execute(&mut *conn)
        .await?;
    let existing: Option<DatasetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM datasets WHERE team_id = $1 AND name = $2 AND content_hash = $3"
    )))
    .bind(team_id)
    .bind(name)
    .bind(&hash)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(d) = existing {
        return Ok(ImportDatasetResult {
            dataset: d.try_into()?,
            created: false,
        });
    }
    let count =
        i32::try_from(rows.len()).map_err(|_| AppError::invalid("body", "too many rows"))?;
    let d: DatasetRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO datasets (id, team_id, name, version, kind, content_hash, row_count, source)
         VALUES ($1, $2, $3, (SELECT COALESCE(max(version), 0) + 1 FROM datasets WHERE team_id = $2 AND name = $3),
                 $4, $5, $6, $7)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(team_id)
    .bind(name)
    .bind(kind.as_str())
    .bind(&hash)
    .bind(count)
    .bind(source)
    .fetch_one(&mut *conn)
    .await?;
    for (c, chunk) in rows.chunks(CHUNK).enumerate() {
        let start = (c * CHUNK) as i32;
        let idx: Vec<i32> = (start..start + chunk.len() as i32).collect();
        let data: Vec<Value> = chunk.iter().cloned().map(Value::Object).collect();
        sqlx::query("INSERT INTO dataset_rows (dataset_id, idx, data) SELECT $1, * FROM unnest($2::int[], $3::jsonb[])")
            .bind(d.id)
            .bind(&idx)
            .bind(&data)
            .execute(&mut *conn)
            .await?;
    }
    Ok(ImportDatasetResult {
        dataset: d.try_into()?,
        created: true,
    })
}

/// One dataset version.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Dataset> {
    sqlx::query_as::<_, DatasetRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM datasets WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("dataset {id}")))?
    .try_into()
}

/// All dataset versions, optionally of one team, newest first.
pub async fn list(pool: &PgPool, team_id: Option<Uuid>) -> Result<Vec<Dataset>> {
    let rows: Vec<DatasetRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM datasets WHERE $1::uuid IS NULL OR team_id = $1 ORDER BY name, version DESC"
    )))
    .bind(team_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// A page of rows for previews.
pub async fn rows(pool: &PgPool, id: Uuid, offset: i64, limit: i64) -> Result<DatasetRows> {
    crate::store::check_window(limit, 1000, offset)?;
    let d = get(pool, id).await?;
    let rows: Vec<(Value,)> = sqlx::query_as(
        "SELECT data FROM dataset_rows WHERE dataset_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
    )
    .bind(id)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(DatasetRows {
        offset,
        rows: rows.into_iter().map(|r| r.0).collect(),
        total: i64::from(d.row_count),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: AppError) -> String {
        match err {
            AppError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn math_rows_need_problem_and_answer() {
        let ok = "{\"problem\":\"1+1?\",\"answer\":\"2\"}\n\n{\"problem\":\"2+2?\",\"answer\":4}\n";
        assert_eq!(parse_jsonl(DatasetKind::Math, ok).unwrap().len(), 2);
        let bad = "{\"problem\":\"1+1?\",\"answer\":\"2\"}\n{\"problem\":\"x\"}\n";
        assert_eq!(
            field_of(parse_jsonl(DatasetKind::Math, bad).unwrap_err()),
            "line 2: answer"
        );
        assert_eq!(
            field_of(parse_jsonl(DatasetKind::Math, "{oops\n").unwrap_err()),
            "line 1"
        );
        assert_eq!(
            field_of(parse_jsonl(DatasetKind::Math, "[1]\n").unwrap_err()),
            "line 1"
        );
        assert_eq!(
            field_of(parse_jsonl(DatasetKind::Math, "\n").unwrap_err()),
            "body"
        );
    }

    #[test]
    fn choice_answer_must_be_a_label() {
        let good = r#"{"question":"q","choices":["a","b","c"],"answer":"C"}"#;
        assert!(parse_jsonl(DatasetKind::Choice, good).is_ok());
        let labelled = r#"{"question":"q","choices":["a","b"],"labels":["1","2"],"answer":"2"}"#;
        assert!(parse_jsonl(DatasetKind::Choice, labelled).is_ok());
        let bad = r#"{"question":"q","choices":["a","b"],"answer":"D"}"#;
        assert_eq!(
            field_of(parse_jsonl(DatasetKind::Choice, bad).unwrap_err()),
            "line 1: answer"
        );
    }

    #[test]
    fn code_rows_accept_each_known_format() {
        let rows = [
            r#"{"prompt":"def f():","test":"assert f()","entry_point":"f"}"#,
            r#"{"problem":"read n","tests":"[{'input':'1','output':'1'}]"}"#,
            r#"{"text":"write f","test_list":["assert f()"]}"#,
        ];
        assert_eq!(
            parse_jsonl(DatasetKind::Code, &rows.join("\n"))
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            field_of(parse_jsonl(DatasetKind::Code, r#"{"prompt":"p"}"#).unwrap_err()),
            "line 1: tests"
        );
    }

    #[test]
    fn content_hash_ignores_key_order_but_not_values() {
        let a = parse_jsonl(DatasetKind::Text, r#"{"a":1,"b":2}"#).unwrap();
        let b = parse_jsonl(DatasetKind::Text, r#"{"b":2,"a":1}"#).unwrap();
        let c = parse_jsonl(DatasetKind::Text, r#"{"b":3,"a":1}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
    }
}
