//! Projects, runs, params, tags and auth rules of `/api/v1`, against a real Postgres.

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, assert_error, token};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn projects_are_created_listed_and_validated(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let id = api.project(&t, "mimo-rl").await;
    let (s, p) = api.get(&format!("/api/v1/projects/{id}")).await;
    assert_eq!((s, p["name"].as_str()), (StatusCode::OK, Some("mimo-rl")));
    assert_error(
        api.post("/api/v1/projects", &t, json!({ "name": "mimo-rl" }))
            .await,
        StatusCode::CONFLICT,
        Some("name"),
    );
    assert_error(
        api.post("/api/v1/projects", &t, json!({ "name": "  " }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("name"),
    );
    assert_error(
        api.post("/api/v1/projects", &t, json!({ "nam": "x" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    );
    assert_error(
        api.post("/api/v1/projects", &t, json!({ "name": 7 })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("name"),
    );
    assert_error(
        api.get("/api/v1/projects/not-a-uuid").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("path"),
    );
    assert_error(
        api.get(&format!("/api/v1/projects/{}", uuid::Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    let (_, list) = api.get("/api/v1/projects").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn writes_need_a_valid_token(pool: PgPool) {
    let api = Api::new(pool.clone());
    let no_token = api
        .call(
            Method::POST,
            "/api/v1/projects",
            None,
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_error(no_token, StatusCode::UNAUTHORIZED, None);
    let bad = api
        .post("/api/v1/projects", "crc_0000", json!({ "name": "x" }))
        .await;
    assert_error(bad, StatusCode::UNAUTHORIZED, None);
    let revoked = token(&pool, "alpha").await;
    sqlx::query("UPDATE api_tokens SET revoked_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    assert_error(
        api.post("/api/v1/projects", &revoked, json!({ "name": "x" }))
            .await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM projects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "a refused write changed nothing");
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_team_cannot_touch_another_teams_runs(pool: PgPool) {
    let api = Api::new(pool.clone());
    let (a, b) = (token(&pool, "alpha").await, token(&pool, "beta").await);
    let project = api.project(&a, "alpha-project").await;
    let run = api.run(&a, &project, json!({ "name": "r" })).await;
    let id = run["id"].as_str().unwrap();
    assert_error(
        api.post("/api/v1/runs", &b, json!({ "project_id": project }))
            .await,
        StatusCode::NOT_FOUND,
        Some("project_id"),
    );
    let patch = api
        .call(
            Method::PATCH,
            &format!("/api/v1/runs/{id}"),
            Some(&b),
            Some(json!({ "status": "killed" })),
        )
        .await;
    assert_error(patch, StatusCode::NOT_FOUND, None);
    let metrics = api
        .post(
            &format!("/api/v1/runs/{id}/metrics"),
            &b,
            json!({ "points": [{ "key": "x", "step": 0, "value": 1.0 }] }),
        )
        .await;
    assert_error(metrics, StatusCode::NOT_FOUND, None);
    assert_error(
        api.post(&format!("/api/v1/runs/{id}/params"), &b, json!({ "lr": 1 }))
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_error(
        api.post(&format!("/api/v1/runs/{id}/tags"), &b, json!({ "t": 1 }))
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    api.read_as(&a).await;
    let (_, after) = api.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(after["status"], "running");
    assert_eq!(after["params"], json!({}));
    assert_eq!(after["tags"], json!({}));
    let (_, m) = api.get(&format!("/api/v1/runs/{id}/metrics")).await;
    assert_eq!(m, json!([]));
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn run_lifecycle_params_and_tags(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let project = api.project(&t, "p").await;
    let run = api
        .run(&t, &project, json!({ "name": "grpo-1", "kind": "rl", "status": "queued", "params": { "lr": 1e-6, "group": 16, "clip_higher": true },
                                   "command": "crucible train rl", "config": { "eps_high": 0.28 } }))
        .await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(
        run["params"],
        json!({ "lr": "1e-6", "group": "16", "clip_higher": "true" })
    );
    assert!(run["started_at"].is_null());

    let path = format!("/api/v1/runs/{id}");
    let (s, r) = api
        .call(
            Method::PATCH,
            &path,
            Some(&t),
            Some(json!({ "status": "running" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(r["started_at"].is_string() && r["finished_at"].is_null());
    let (_, r) = api
        .call(
            Method::PATCH,
            &path,
            Some(&t),
            Some(json!({ "status": "finished" })),
        )
        .await;
    assert!(r["finished_at"].is_string());
    let reopen = api
        .call(
            Method::PATCH,
            &path,
            Some(&t),
            Some(json!({ "status": "running" })),
        )
        .await;
    assert_error(reopen, StatusCode::CONFLICT, Some("status"));
    let bad_status = api
        .call(
            Method::PATCH,
            &path,
            Some(&t),
            Some(json!({ "status": "paused" })),
        )
        .await;
    assert_error(bad_status, StatusCode::UNPROCESSABLE_ENTITY, Some("status"));

    let params = format!("/api/v1/runs/{id}/params");
    assert_eq!(
        api.post(&params, &t, json!({ "lr": "1e-6", "seed": 7 }))
            .await
            .0,
        StatusCode::OK
    );
    assert_error(
        api.post(&params, &t, json!({ "lr": 0.1 })).await,
        StatusCode::CONFLICT,
        Some("params.lr"),
    );
    assert_error(
        api.post(&params, &t, json!({ "lr": [1] })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    );

    let tags = format!("/api/v1/runs/{id}/tags");
    assert_eq!(
        api.post(&tags, &t, json!({ "stage": "sft", "best": true }))
            .await
            .0,
        StatusCode::OK
    );
    let (_, r) = api.post(&tags, &t, json!({ "stage": "rl" })).await;
    assert_eq!(r["tags"], json!({ "stage": "rl", "best": "true" }));
    assert_eq!(r["params"]["seed"], "7");
    let del = api
        .call(
            Method::DELETE,
            &format!("/api/v1/runs/{id}/tags/best"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(del.0, StatusCode::NO_CONTENT);
    let again = api
        .call(
            Method::DELETE,
            &format!("/api/v1/runs/{id}/tags/best"),
            Some(&t),
            None,
        )
        .await;
    assert_error(again, StatusCode::NOT_FOUND, None);

    let child = api
        .run(&t, &project, json!({ "parent_run_id": id, "kind": "eval" }))
        .await;
    assert_eq!(child["parent_run_id"], id);
    let other = api.project(&t, "other").await;
    let bad_parent = api
        .post(
            "/api/v1/runs",
            &t,
            json!({ "project_id": other, "parent_run_id": id }),
        )
        .await;
    assert_error(bad_parent, StatusCode::NOT_FOUND, Some("parent_run_id"));
    let missing_project = api
        .post(
            "/api/v1/runs",
            &t,
            json!({ "project_id": uuid::Uuid::new_v4() }),
        )
        .await;
    assert_error(missing_project, StatusCode::NOT_FOUND, Some("project_id"));
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn runs_list_with_filters_sort_and_pages(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let p1 = api.project(&t, "p1").await;
    let p2 = api.project(&t, "p2").await;
    for (i, kind) in ["rl", "sft", "eval", "rl", "rl"].iter().enumerate() {
        let tags = if i % 2 == 0 {
            json!({ "bench": "aime" })
        } else {
            json!({ "bench": "math" })
        };
        api.run(
            &t,
            &p1,
            json!({ "name": format!("run-{i}"), "kind": kind, "tags": tags }),
        )
        .await;
    }
    api.run(&t, &p2, json!({ "name": "elsewhere", "kind": "rl" }))
        .await;

    let names = |v: &serde_json::Value| -> Vec<String> {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = api
        .get(&format!("/api/v1/runs?project_id={p1}&kind=rl&sort=name"))
        .await;
    assert_eq!(names(&page), ["run-0", "run-3", "run-4"]);
    assert_eq!(page["total"], 3);
    let (_, page) = api
        .get(&format!(
            "/api/v1/runs?project_id={p1}&tag=bench:aime&sort=-name"
        ))
        .await;
    assert_eq!(names(&page), ["run-4", "run-2", "run-0"]);
    let (_, page) = api.get("/api/v1/runs?q=ELSE").await;
    assert_eq!(names(&page), ["elsewhere"]);
    let (_, page) = api
        .get(&format!(
            "/api/v1/runs?project_id={p1}&sort=name&limit=2&offset=2"
        ))
        .await;
    assert_eq!(
        (names(&page), page["total"].as_i64()),
        (vec!["run-2".to_string(), "run-3".to_string()], Some(5))
    );
    let (_, past_end) = api
        .get(&format!("/api/v1/runs?project_id={p1}&limit=2&offset=10"))
        .await;
    assert_eq!(
        (
            past_end["runs"].as_array().unwrap().len(),
            past_end["total"].as_i64()
        ),
        (0, Some(5))
    );
    let (_, finished) = api.get("/api/v1/runs?status=finished").await;
    assert_eq!(finished["total"], 0);

    assert_error(
        api.get("/api/v1/runs?sort=lr").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("sort"),
    );
    assert_error(
        api.get("/api/v1/runs?limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("limit"),
    );
    assert_error(
        api.get("/api/v1/runs?kind=banana").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("kind"),
    );
    assert_error(
        api.get("/api/v1/runs?project_id=zzz").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("project_id"),
    );
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn openapi_document_lists_the_api(pool: PgPool) {
    let api = Api::new(pool);
    let (s, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/runs",
        "/api/v1/runs/{id}/metrics",
        "/api/v1/datasets/import",
        "/api/v1/models",
        "/api/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "missing {path}");
    }
    assert!(doc["components"]["schemas"].get("Run").is_some());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
