//! `/api/v1/openapi.json`: the machine-readable contract of `/api/v1`.
//!
//! The handlers' annotations declare what is particular to each operation (its success codes, its
//! conflicts); [`document`] adds what follows from the server's shape, in one place, so no
//! operation can forget it: who may call it (reads: a token or a dashboard session, unless the
//! deployment opened reads; writes: a token), and the errors every extractor and lookup can
//! answer with (401, 404, 413, 422, 500).

use crate::routes::{
    artifacts, datasets, evals, events, jobs, metrics, models, projects, runs, workers,
};
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::collections::BTreeMap;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder, Schema};

/// The operations, assembled from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Crucible API",
        description = "Track, evaluate and train reasoning LLMs the MiMo way.\n\n\
            Rules no schema below can state: no string may contain U+0000 (Postgres cannot store \
            it; a body with one is a 422 naming `body`, except completions and samples, where it \
            becomes U+FFFD); every JSON body is an object; an integer may be spelled `2.0`."
    ),
    paths(
        crate::routes::health,
        projects::create,
        projects::list,
        projects::show,
        runs::create,
        runs::list,
        runs::show,
        runs::update,
        runs::log_params,
        runs::set_tags,
        runs::delete_tag,
        runs::upload_completions,
        runs::list_completions,
        artifacts::list,
        artifacts::download,
        metrics::log,
        metrics::log_bulk,
        metrics::summaries,
        metrics::history,
        metrics::series,
        datasets::import,
        datasets::list,
        datasets::show,
        datasets::rows,
        models::register,
        models::list,
        models::show,
        jobs::submit,
        jobs::list,
        jobs::show,
        jobs::cancel,
        jobs::heartbeat,
        jobs::complete,
        workers::register,
        workers::list,
        workers::lease,
        evals::list,
        evals::show,
        evals::samples,
        evals::upload_samples,
        evals::upload_scores,
        evals::leaderboard,
        events::events,
    )
)]
struct Operations;

/// The one operation anyone may call: load balancers probe it without credentials.
const PUBLIC_PATH: &str = "/api/v1/health";
/// Security scheme of API tokens.
const BEARER: &str = "bearer";
/// Security scheme of the dashboard's sign-in cookie.
const SESSION: &str = "session";

/// The document as this deployment answers: with open reads (`CRUCIBLE_OPEN_READS=1`) a read
/// needs no credentials and never answers 401.
pub fn document(open_reads: bool) -> serde_json::Value {
    let mut doc = serde_json::to_value(operations_with_errors(open_reads))
        .expect("an OpenAPI document serializes");
    each_object(&mut doc, &mut pin_uuid);
    for name in CLOSED_ENUMS {
        each_object(&mut doc["components"]["schemas"][*name], &mut close_object);
    }
    doc
}

/// Calls `visit` on every JSON object inside `value`, outermost first.
fn each_object(
    value: &mut serde_json::Value,
    visit: &mut impl FnMut(&mut serde_json::Map<String, serde_json::Value>),
) {
    match value {
        serde_json::Value::Object(map) => {
            visit(map);
            map.values_mut().for_each(|v| each_object(v, visit));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| each_object(v, visit)),
        _ => {}
    }
}

/// Enums whose variants `deny_unknown_fields`: utoipa closes the objects of such structs
/// (`additionalProperties: false`) but not those of enum variants, so the document would admit
/// fields the server refuses.
const CLOSED_ENUMS: &[&str] = &[
    "DataSource",
    "ModelInit",
    "RlData",
    "Schedule",
    "Speculative",
];

/// Sets `additionalProperties: false` on an object schema written out in place (references lead
/// elsewhere and keep their own).
fn close_object(schema: &mut serde_json::Map<String, serde_json::Value>) {
    if schema.get("type").and_then(|t| t.as_str()) == Some("object") {
        schema
            .entry("additionalProperties")
            .or_insert(serde_json::Value::Bool(false));
    }
}

/// A hyphenated UUID, the spelling the server writes; with its length fixed at 36 the pattern
/// needs no end anchor.
const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

/// `format: uuid` only annotates (JSON Schema asserts no format by default), so a generator
/// may send `""` where an id belongs; an id schema also gets the pattern and length it means.
fn pin_uuid(schema: &mut serde_json::Map<String, serde_json::Value>) {
    if schema.get("format").and_then(|f| f.as_str()) == Some("uuid") {
        schema.insert("pattern".into(), UUID_PATTERN.into());
        schema.insert("minLength".into(), 36.into());
        schema.insert("maxLength".into(), 36.into());
    }
}

/// The handlers' operations with security and the errors that follow from their inputs.
fn operations_with_errors(open_reads: bool) -> utoipa::openapi::OpenApi {
    let mut doc = Operations::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    inline_tagged_variants(&mut components.schemas);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("crc_…")
                .description(Some("An API token of the team (`crucible token create`)."))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::SESSION_COOKIE,
            "The dashboard's sign-in session; reads only.",
        ))),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        if path == PUBLIC_PATH {
            for (op, _) in operations(item) {
                declare_errors(op, false);
            }
            continue;
        }
        for (op, is_read) in operations(item) {
            let mut allowed = vec![SecurityRequirement::new(BEARER, Vec::<String>::new())];
            let open = is_read && open_reads;
            if is_read {
                allowed.push(SecurityRequirement::new(SESSION, Vec::<String>::new()));
            }
            if open {
                allowed.insert(0, SecurityRequirement::default());
            }
            op.security = Some(allowed);
            declare_errors(op, !open);
        }
    }
    doc
}

/// serde's internally tagged enums (`JobSpec`: `{"kind": "eval", ...}`) come out of utoipa as
/// `oneOf: [allOf: [$ref Variant, {kind}]]`; where the variant denies unknown fields its
/// `additionalProperties: false` then forbids the tag itself, and no body satisfies the schema.
/// Each such branch becomes the variant's own object with the tag property added.
fn inline_tagged_variants(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let variants = schemas.clone();
    for schema in schemas.values_mut() {
        let RefOr::T(Schema::OneOf(one_of)) = schema else {
            continue;
        };
        for branch in &mut one_of.items {
            let RefOr::T(Schema::AllOf(all_of)) = branch else {
                continue;
            };
            let [RefOr::Ref(variant), RefOr::T(Schema::Object(tag))] = all_of.items.as_slice()
            else {
                continue;
            };
            let name = variant
                .ref_location
                .trim_start_matches("#/components/schemas/");
            let Some(RefOr::T(Schema::Object(fields))) = variants.get(name) else {
                continue;
            };
            let mut merged = fields.clone();
            merged.properties.extend(tag.properties.clone());
            merged.required.extend(tag.required.iter().cloned());
            merged.description = all_of.description.clone().or(merged.description);
            *branch = RefOr::T(Schema::Object(merged));
        }
    }
}

/// Every operation of a path, each with whether it is a read (a `GET`).
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&mut Operation, bool)> {
    let reads = item.get.iter_mut().map(|op| (op, true));
    let writes = [
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
    .map(|op| (op, false));
    reads.chain(writes)
}

/// Adds the error answers that follow from the operation's inputs, keeping any the handler's
/// annotation already describes more precisely.
fn declare_errors(op: &mut Operation, needs_credentials: bool) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_path_id = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_input = !params.is_empty() || op.request_body.is_some();
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(api_error(description)));
    };
    if needs_credentials {
        add(
            "401",
            "No credentials, or an unknown or revoked token: a read needs a token or a dashboard \
             session, a write a token.",
        );
    }
    if has_path_id {
        add(
            "404",
            "Nothing with this id, or it belongs to another team (the two answer alike).",
        );
    }
    if has_body {
        add(
            "413",
            "The body is larger than the operation accepts: 2 MiB unless its description names \
             another limit.",
        );
    }
    if has_input {
        add(
            "422",
            "A parameter or a body field is invalid; `error.field` names it.",
        );
    }
    add(
        "500",
        "A fault inside the server (the database is unreachable, say), logged with its cause; \
         never the answer to any input.",
    );
}

/// A response carrying the API's error body.
fn api_error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ApiError"))),
        )
        .build()
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    /// Built once per setting: the document depends on nothing but the code and `open_reads`.
    static DOCUMENTS: std::sync::LazyLock<[serde_json::Value; 2]> =
        std::sync::LazyLock::new(|| [document(false), document(true)]);
    Router::new().route(
        "/openapi.json",
        get(|State(s): State<AppState>| async move { Json(&DOCUMENTS[usize::from(s.open_reads)]) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn statuses(doc: &Value, path: &str, method: &str) -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn errors_follow_from_each_operations_inputs() {
        let doc = document(false);
        assert_eq!(
            statuses(&doc, "/api/v1/runs/{id}", "get"),
            ["200", "401", "404", "422", "500"]
        );
        assert_eq!(
            statuses(&doc, "/api/v1/projects", "post"),
            ["201", "401", "409", "413", "422", "500"]
        );
        assert_eq!(statuses(&doc, PUBLIC_PATH, "get"), ["200", "500"]);
    }

    /// Every `$ref` in `value`, depth first.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document(false);
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 20, "the document references its schemas");
        let schemas = &doc["components"]["schemas"];
        let dangling: Vec<&str> = found
            .into_iter()
            .filter(|r| {
                r.strip_prefix("#/components/schemas/")
                    .is_none_or(|name| schemas.get(name).is_none())
            })
            .collect();
        assert!(dangling.is_empty(), "unresolvable: {dangling:?}");
    }

    #[test]
    fn open_reads_drop_the_401_of_reads_but_not_of_writes() {
        let doc = document(true);
        assert!(!statuses(&doc, "/api/v1/runs", "get").contains(&"401".to_string()));
        assert!(statuses(&doc, "/api/v1/runs", "post").contains(&"401".to_string()));
        assert_eq!(
            doc["paths"]["/api/v1/runs"]["get"]["security"][0],
            serde_json::json!({})
        );
    }

    #[test]
    fn a_tagged_variant_admits_its_tag_and_ids_their_spelling() {
        let doc = document(false);
        let eval = &doc["components"]["schemas"]["JobSpec"]["oneOf"][0];
        assert_eq!(eval["additionalProperties"], false);
        assert_eq!(
            eval["properties"]["kind"]["enum"],
            serde_json::json!(["eval"])
        );
        assert!(eval["properties"]["model_id"].is_object());
        assert_eq!(eval["properties"]["model_id"]["maxLength"], 36);
    }
}
