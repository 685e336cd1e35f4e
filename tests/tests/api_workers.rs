//! What workers report is checked, and what the server shows of them stays true: registration
//! refuses garbage naming the field, silent workers show as offline and later leave the list, and
//! a succeeded job's progress is final.

mod common;

use axum::http::StatusCode;
use common::{Api, assert_error, token};
use serde_json::{Value, json};
use sqlx::PgPool;

fn registration(name: &str, devices: Value, memory: Value, kinds: Value) -> Value {
    json!({ "name": name, "capabilities": { "devices": devices, "memory_gb": memory, "kinds": kinds } })
}

async fn register(api: &Api, t: &str, name: &str) -> String {
    let body = registration(name, json!(["cpu"]), json!(8.0), json!(["eval"]));
    let (s, w) = api.post("/api/v1/workers", t, body).await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["online"], true, "a worker is online when it registers");
    w["id"].as_str().unwrap().to_string()
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn registration_refuses_garbage_naming_the_field(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let cpu = json!(["cpu"]);
    let eval = json!(["eval"]);
    let m = json!(8.0);
    let long = "w".repeat(300);
    for (body, field) in [
        (
            registration("gpu\u{7}box", cpu.clone(), m.clone(), eval.clone()),
            "name",
        ),
        (
            registration("a\nb", cpu.clone(), m.clone(), eval.clone()),
            "name",
        ),
        (
            registration(" ", cpu.clone(), m.clone(), eval.clone()),
            "name",
        ),
        (
            registration(&long, cpu.clone(), m.clone(), eval.clone()),
            "name",
        ),
        (
            registration("w", cpu.clone(), json!(1e30), eval.clone()),
            "capabilities.memory_gb",
        ),
        (
            registration("w", cpu.clone(), json!(-4.0), eval.clone()),
            "capabilities.memory_gb",
        ),
        (
            registration("w", cpu.clone(), json!(0.0), eval.clone()),
            "capabilities.memory_gb",
        ),
        (
            registration("w", json!([]), m.clone(), eval.clone()),
            "capabilities.devices",
        ),
        (
            registration("w", json!(["cpu", "cpu"]), m.clone(), eval.clone()),
            "capabilities.devices",
        ),
        (
            registration("w", cpu.clone(), m.clone(), json!([])),
            "capabilities.kinds",
        ),
        (
            registration("w", cpu.clone(), m.clone(), json!(["eval", "rl", "eval"])),
            "capabilities.kinds",
        ),
    ] {
        assert_error(
            api.post("/api/v1/workers", &t, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(field),
        );
    }
    let (_, listed) = api.get("/api/v1/workers").await;
    assert_eq!(listed, json!([]), "nothing refused was stored");
    register(&api, &t, "gpu-box-1").await;
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn silent_workers_show_offline_then_leave_the_list(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let live = register(&api, &t, "live").await;
    let silent = register(&api, &t, "silent").await;
    let gone = register(&api, &t, "gone").await;
    // `silent` last spoke two leases ago; `gone` a day and an hour ago.
    sqlx::query(
        "UPDATE workers SET last_seen_at = now() - interval '60 seconds',
                            online_until = now() - interval '30 seconds' WHERE id = $1::uuid",
    )
    .bind(&silent)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE workers SET last_seen_at = now() - interval '25 hours',
                            online_until = now() - interval '25 hours' WHERE id = $1::uuid",
    )
    .bind(&gone)
    .execute(&pool)
    .await
    .unwrap();
    let online = || async {
        let (s, list) = api.get("/api/v1/workers").await;
        assert_eq!(s, StatusCode::OK, "{list}");
        list.as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["id"].as_str().unwrap().to_string(),
                    w["online"].as_bool().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        online().await,
        vec![(live.clone(), true), (silent.clone(), false)],
        "most recent first; the day-old worker is no longer listed"
    );
    let (_, page) = api.html("/jobs").await;
    assert!(
        page.contains(r#"data-status="online""#) && page.contains(r#"data-status="offline""#),
        "the Jobs page shows which workers are online"
    );
    // Polling for a lease is a sign of life: the silent worker is back.
    let (s, _) = api
        .post(&format!("/api/v1/workers/{silent}/lease"), &t, json!({}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(online().await, vec![(silent, true), (live, true)]);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn a_succeeded_job_shows_all_its_work_done(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    api.read_as(&t).await;
    let body = registration("w", json!(["cpu"]), json!(8.0), json!(["generate"]));
    let (_, w) = api.post("/api/v1/workers", &t, body).await;
    let w = w["id"].as_str().unwrap().to_string();
    let m = api.local_model(&t, "tiny", json!([])).await;
    let mut ended = Vec::new();
    for error in [None, Some("out of memory")] {
        let job = json!({ "spec": { "kind": "generate", "model_id": m, "prompts": ["hi"] } });
        let (s, job) = api.post("/api/v1/jobs", &t, job).await;
        assert_eq!(s, StatusCode::CREATED, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        let (s, lease) = api
            .post(&format!("/api/v1/workers/{w}/lease"), &t, json!({}))
            .await;
        assert_eq!(
            (s, lease["job"]["id"].as_str()),
            (StatusCode::OK, Some(id.as_str()))
        );
        let hb = json!({ "worker_id": w, "progress": { "done": 768, "total": 1000, "message": "generating" } });
        let (s, _) = api
            .post(&format!("/api/v1/jobs/{id}/heartbeat"), &t, hb)
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, done) = api
            .post(
                &format!("/api/v1/jobs/{id}/complete"),
                &t,
                json!({ "worker_id": w, "error": error }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{done}");
        ended.push(done);
    }
    assert_eq!(ended[0]["status"], "succeeded");
    assert_eq!(
        (
            &ended[0]["progress"]["done"],
            &ended[0]["progress"]["total"]
        ),
        (&json!(1000), &json!(1000)),
        "a succeeded job did all its work"
    );
    assert_eq!(ended[0]["progress"]["message"], "generating");
    assert_eq!(ended[1]["status"], "failed");
    assert_eq!(
        ended[1]["progress"]["done"], 768,
        "a failed job shows where it stopped"
    );
}
