//! Dataset import/versioning/preview and model registration.

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, assert_error, token};
use serde_json::json;
use sqlx::PgPool;

async fn import(api: &Api, t: &str, query: &str, body: &str) -> (StatusCode, serde_json::Value) {
    api.raw(
        Method::POST,
        &format!("/api/v1/datasets/import?{query}"),
        Some(t),
        Some(body.to_string()),
        "application/x-ndjson",
    )
    .await
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn datasets_version_by_content(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let v1 = "{\"problem\":\"1+1\",\"answer\":\"2\"}\n{\"problem\":\"2+3\",\"answer\":5}\n";
    let (s, first) = import(&api, &t, "name=arith&kind=math&source=gen.jsonl", v1).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(
        (
            first["dataset"]["version"].as_i64(),
            first["dataset"]["row_count"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let (s, same) = import(&api, &t, "name=arith&kind=math", v1).await;
    assert_eq!(
        (s, same["created"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert_eq!(same["dataset"]["id"], first["dataset"]["id"]);
    let (s, second) = import(
        &api,
        &t,
        "name=arith&kind=math",
        "{\"problem\":\"3+3\",\"answer\":\"6\"}\n",
    )
    .await;
    assert_eq!(
        (s, second["dataset"]["version"].as_i64()),
        (StatusCode::CREATED, Some(2))
    );
    assert_ne!(
        second["dataset"]["content_hash"],
        first["dataset"]["content_hash"]
    );

    let id = first["dataset"]["id"].as_str().unwrap();
    let (_, rows) = api
        .get(&format!("/api/v1/datasets/{id}/rows?offset=1&limit=5"))
        .await;
    assert_eq!(rows["total"], 2);
    assert_eq!(rows["rows"], json!([{ "problem": "2+3", "answer": 5 }]));
    assert_error(
        api.get(&format!("/api/v1/datasets/{id}/rows?limit=0"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("limit"),
    );
    let (_, list) = api.get("/api/v1/datasets").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn bad_jsonl_names_the_line_and_stores_nothing(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let body = "{\"question\":\"q\",\"choices\":[\"a\",\"b\"],\"answer\":\"A\"}\n{\"question\":\"q\",\"choices\":[\"a\",\"b\"],\"answer\":\"E\"}\n";
    assert_error(
        import(&api, &t, "name=c&kind=choice", body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("line 2: answer"),
    );
    assert_error(
        import(&api, &t, "name=c&kind=choice", "{\"question\":\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("line 1"),
    );
    assert_error(
        import(&api, &t, "name=c&kind=poetry", "{}\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("kind"),
    );
    assert_error(
        import(&api, &t, "kind=math", "{}\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("name"),
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM datasets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn real_benchmark_files_import(pool: PgPool) {
    let Some(dir) = crucible_types::testing::data_dir("real_benchmark_files_import") else {
        return;
    };
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    for (file, kind, rows) in [
        ("math500/test.jsonl", "math", 500),
        ("humaneval/HumanEval.jsonl", "code", 164),
        ("arc_challenge/test.jsonl", "choice", 1172),
    ] {
        let body = std::fs::read_to_string(dir.join(file)).unwrap();
        let (s, r) = import(&api, &t, &format!("name={file}&kind={kind}"), &body).await;
        assert_eq!(s, StatusCode::CREATED, "{file}: {r}");
        assert_eq!(r["dataset"]["row_count"], rows, "{file}");
    }
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn models_register_with_checked_sources(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architectures":["MiMoForCausalLM"],"hidden_size":64}"#,
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (s, m) = api
        .post(
            "/api/v1/models",
            &t,
            json!({ "name": "tiny", "source": { "kind": "hf_local", "path": path } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["architecture"], "MiMoForCausalLM");
    assert_error(
        api.post(
            "/api/v1/models",
            &t,
            json!({ "name": "tiny", "source": { "kind": "hf_local", "path": path } }),
        )
        .await,
        StatusCode::CONFLICT,
        Some("name"),
    );
    let missing =
        json!({ "name": "m2", "source": { "kind": "hf_local", "path": "/nonexistent/model" } });
    assert_error(
        api.post("/api/v1/models", &t, missing).await,
        StatusCode::NOT_FOUND,
        Some("source.path"),
    );
    let relative = json!({ "name": "m3", "source": { "kind": "hf_local", "path": "models/x" } });
    assert_error(
        api.post("/api/v1/models", &t, relative).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("source.path"),
    );
    let bad_url = json!({ "name": "m4", "source": { "kind": "openai", "base_url": "gpu-box:8000", "model": "m" } });
    assert_error(
        api.post("/api/v1/models", &t, bad_url).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("source.base_url"),
    );
    let unknown_kind = json!({ "name": "m5", "source": { "kind": "s3", "path": "/x" } });
    assert_error(
        api.post("/api/v1/models", &t, unknown_kind).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("source.kind"),
    );
    let endpoint = json!({ "name": "vllm", "source": { "kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "MiMo-7B-RL" } });
    let (s, m) = api.post("/api/v1/models", &t, endpoint).await;
    assert_eq!(
        (s, m["source"]["model"].as_str()),
        (StatusCode::CREATED, Some("MiMo-7B-RL"))
    );
    let (_, list) = api.get("/api/v1/models").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

/// A Hugging Face model registers by its hub id (nothing is downloaded by the server); a
/// malformed id or revision is a 422 naming the field, and registers nothing.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn hub_models_register_by_id_and_bad_ids_are_refused(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let body = json!({ "name": "mimo-rl", "source": { "kind": "hf_hub", "repo": "XiaomiMiMo/MiMo-7B-RL", "revision": "v1.0" } });
    let (s, m) = api.post("/api/v1/models", &t, body).await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(
        m["source"],
        json!({ "kind": "hf_hub", "repo": "XiaomiMiMo/MiMo-7B-RL", "revision": "v1.0" })
    );
    let (s, m) = api
        .post(
            "/api/v1/models",
            &t,
            json!({ "name": "0", "source": { "kind": "hf_hub", "repo": "0", "revision": null } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["source"], json!({ "kind": "hf_hub", "repo": "0" }));
    for (source, field) in [
        (json!({ "kind": "hf_hub", "repo": "a/b/c" }), "source.repo"),
        (json!({ "kind": "hf_hub", "repo": "../etc" }), "source.repo"),
        (
            json!({ "kind": "hf_hub", "repo": "a/b", "revision": "x/../y" }),
            "source.revision",
        ),
    ] {
        let got = api
            .post(
                "/api/v1/models",
                &t,
                json!({ "name": "bad", "source": source }),
            )
            .await;
        assert_error(got, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
    let (_, listed) = api.get("/api/v1/models").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}
