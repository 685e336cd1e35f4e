//! Metric ingestion built for RL: idempotent, out-of-order, bulk, downsampled; plus SSE delivery.

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, assert_error, token};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

async fn setup(pool: &PgPool) -> (Api, String, String) {
    let api = Api::new(pool.clone());
    let t = token(pool, "alpha").await;
    api.read_as(&t).await;
    let project = api.project(&t, "p").await;
    let run = api.run(&t, &project, json!({ "kind": "rl" })).await;
    (api, t, run["id"].as_str().unwrap().to_string())
}

fn points(key: &str, steps: impl IntoIterator<Item = i64>, f: impl Fn(i64) -> f64) -> Value {
    Value::Array(
        steps
            .into_iter()
            .map(|s| json!({ "key": key, "step": s, "value": f(s) }))
            .collect(),
    )
}

async fn history(api: &Api, run: &str, key: &str) -> (Vec<i64>, Vec<f64>) {
    let (s, h) = api
        .get(&format!("/api/v1/runs/{run}/metrics/history?key={key}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    let steps = h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let values = h["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (steps, values)
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn out_of_order_and_repeated_points_converge(pool: PgPool) {
    let (api, t, run) = setup(&pool).await;
    let url = format!("/api/v1/runs/{run}/metrics");
    let (s, r) = api
        .post(
            &url,
            &t,
            json!({ "points": points("reward/mean", [5, 3, 1], |s| s as f64) }),
        )
        .await;
    assert_eq!((s, r["accepted"].as_i64()), (StatusCode::OK, Some(3)));
    // A retry of the same batch, a late point older than everything, and an overwrite of step 3.
    api.post(
        &url,
        &t,
        json!({ "points": points("reward/mean", [5, 3, 1], |s| s as f64) }),
    )
    .await;
    api.post(
        &url,
        &t,
        json!({ "points": points("reward/mean", [0], |_| -1.0) }),
    )
    .await;
    let (_, r) = api
        .post(
            &url,
            &t,
            json!({ "points": [
        { "key": "reward/mean", "step": 3, "value": 30.0 },
        { "key": "reward/mean", "step": 3, "value": 33.0 },
    ] }),
        )
        .await;
    assert_eq!(r["accepted"], 1, "repeats within one call collapse");
    assert_eq!(
        history(&api, &run, "reward/mean").await,
        (vec![0, 1, 3, 5], vec![-1.0, 1.0, 33.0, 5.0])
    );

    let (_, summary) = api.get(&url).await;
    assert_eq!(
        summary,
        json!([{ "key": "reward/mean", "count": 4, "last_step": 5, "last_value": 5.0, "min": -1.0, "max": 33.0 }])
    );

    // Deleting the run removes its points.
    sqlx::query("DELETE FROM runs WHERE id = $1::uuid")
        .bind(&run)
        .execute(&pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM metric_chunks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// Steps 0..n-1 in a scrambled order (a permutation: 37 is coprime with n), with each step's value.
fn scrambled(n: i64, value: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (i * 37 % n, value(i * 37 % n))).collect()
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn points_logged_one_at_a_time_are_compacted_without_losing_any(pool: PgPool) {
    let (api, t, run) = setup(&pool).await;
    let url = format!("/api/v1/runs/{run}/metrics");
    // 300 one-point calls out of order, then 100 overwrites (odd steps), interleaved with a second key.
    let first = scrambled(300, |s| s as f64);
    let overwrites = scrambled(200, |s| -(s as f64))
        .into_iter()
        .filter(|(s, _)| s % 2 == 1);
    for (step, value) in first.into_iter().chain(overwrites) {
        let (s, _) = api
            .post(
                &url,
                &t,
                json!({ "points": [{ "key": "kl", "step": step, "value": value },
                                   { "key": "lr", "step": step, "value": 0.1 }] }),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (steps, values) = history(&api, &run, "kl").await;
    assert_eq!(steps, (0..300).collect::<Vec<_>>());
    let expected: Vec<f64> = (0..300)
        .map(|s| {
            if s < 200 && s % 2 == 1 {
                -(s as f64)
            } else {
                s as f64
            }
        })
        .collect();
    assert_eq!(values, expected);
    assert_eq!(history(&api, &run, "lr").await.0.len(), 300);
    // Both keys of each call are compacted together.
    let chunks: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id
         WHERE s.run_id = $1::uuid GROUP BY s.key ORDER BY s.key",
    )
    .bind(&run)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        chunks.len() == 2 && chunks.iter().all(|&n| n <= 16),
        "400 one-point writes left {chunks:?} chunks per key"
    );
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn concurrent_small_writers_of_one_series_lose_nothing(pool: PgPool) {
    let (api, t, run) = setup(&pool).await;
    let api = std::sync::Arc::new(api);
    let url = format!("/api/v1/runs/{run}/metrics");
    // Four writers create the same two series at once, then keep logging into them while
    // compaction runs (or is skipped because another write is in flight).
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let (api, t, url) = (api.clone(), t.clone(), url.clone());
            tokio::spawn(async move {
                for i in 0..100 {
                    let step = i * 4 + w;
                    let body = json!({ "points": [
                        { "key": "shared", "step": step, "value": step as f64 },
                        { "key": "also", "step": step, "value": -(step as f64) },
                    ] });
                    let (s, r) = api.post(&url, &t, body).await;
                    assert_eq!(s, StatusCode::OK, "{r}");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let all: Vec<i64> = (0..400).collect();
    assert_eq!(
        history(&api, &run, "shared").await,
        (all.clone(), all.iter().map(|&s| s as f64).collect())
    );
    assert_eq!(
        history(&api, &run, "also").await,
        (all.clone(), all.iter().map(|&s| -(s as f64)).collect())
    );
}

#[sqlx::test(migrations = false)]
async fn the_chunk_migration_keeps_every_stored_point(pool: PgPool) {
    let migration = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/../migrations/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(migration("20261128000001_initial.sql")))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO teams (id, name) VALUES (gen_random_uuid(), 't');
         INSERT INTO projects (id, team_id, name) SELECT gen_random_uuid(), id, 'p' FROM teams;
         INSERT INTO runs (id, project_id, name, kind, status)
             SELECT gen_random_uuid(), id, 'r', 'rl', 'running' FROM projects;
         INSERT INTO metric_series (run_id, key) SELECT id, k FROM runs, (VALUES ('a'), ('b')) v(k);
         INSERT INTO metric_points SELECT s.id, g, g * 0.5, now() FROM metric_series s, generate_series(0, 2500) g
             WHERE s.key = 'a';
         INSERT INTO metric_points SELECT s.id, g * 10, -g, now() FROM metric_series s, generate_series(0, 3) g
             WHERE s.key = 'b';",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(migration(
        "20261201000001_metric_chunks.sql",
    )))
    .execute(&pool)
    .await
    .unwrap();
    let rows: Vec<(String, i64, Vec<i64>, Vec<f64>)> = sqlx::query_as(
        "SELECT s.key, count(*), array_agg(step ORDER BY step), array_agg(val ORDER BY step)
         FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id,
              unnest(c.steps, c.vals) AS u(step, val)
         GROUP BY s.key ORDER BY s.key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1, 2501);
    assert_eq!(rows[0].2, (0..=2500).collect::<Vec<i64>>());
    assert_eq!(rows[0].3[2500], 1250.0);
    assert_eq!(
        (rows[1].2.clone(), rows[1].3.clone()),
        (vec![0, 10, 20, 30], vec![0.0, -1.0, -2.0, -3.0])
    );
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM metric_chunks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(chunks, 4, "chunks of at most 1000 steps per series");
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn bad_points_are_refused_and_change_nothing(pool: PgPool) {
    let (api, t, run) = setup(&pool).await;
    let url = format!("/api/v1/runs/{run}/metrics");
    let too_many = json!({ "points": points("x", 0..1001, |_| 0.0) });
    assert_error(
        api.post(&url, &t, too_many).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("points"),
    );
    let bad_value = json!({ "points": [{ "key": "x", "step": 0, "value": 1.0 }, { "key": "x", "step": 1, "value": "high" }] });
    assert_error(
        api.post(&url, &t, bad_value).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("points[1].value"),
    );
    let negative = json!({ "points": [{ "key": "x", "step": 0, "value": 1.0 }, { "key": "x", "step": -2, "value": 1.0 }] });
    assert_error(
        api.post(&url, &t, negative).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("points[1].step"),
    );
    let blank_key = json!({ "points": [{ "key": "", "step": 0, "value": 1.0 }] });
    assert_error(
        api.post(&url, &t, blank_key).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("points[0].key"),
    );
    // The field's old name is refused, not ignored (the point would silently lose its time).
    let old_time = json!({ "points": [{ "key": "x", "step": 0, "value": 1.0, "timestamp": "2026-12-01T00:00:00Z" }] });
    assert_error(
        api.post(&url, &t, old_time).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("points[0].timestamp"),
    );
    let out_of_time = json!({ "points": [{ "key": "x", "step": 0, "value": 1.0, "timestamp_ms": 300_000_000_000_000i64 }] });
    assert_error(
        api.post(&url, &t, out_of_time).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("points[0].timestamp_ms"),
    );
    let (_, summary) = api.get(&url).await;
    assert_eq!(summary, json!([]), "nothing of a refused batch was stored");
    let unknown_run = format!("/api/v1/runs/{}/metrics", uuid::Uuid::new_v4());
    assert_error(
        api.post(&unknown_run, &t, json!({ "points": [] })).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_error(
        api.get(&format!("/api/v1/runs/{run}/metrics/history?key=nope"))
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_error(
        api.get(&format!("/api/v1/runs/{run}/metrics/history"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("key"),
    );
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn bulk_upload_is_one_transaction(pool: PgPool) {
    let (api, t, run) = setup(&pool).await;
    let url = format!("/api/v1/runs/{run}/metrics/bulk");
    let ndjson: String = (0..25_000)
        .map(|s| {
            format!(
                "{{\"key\":\"loss\",\"step\":{s},\"value\":{}}}\n",
                s as f64 * 0.5
            )
        })
        .collect();
    let (s, r) = api
        .raw(
            Method::POST,
            &url,
            Some(&t),
            Some(ndjson),
            "application/x-ndjson",
        )
        .await;
    assert_eq!((s, r["accepted"].as_i64()), (StatusCode::OK, Some(25_000)));
    let (steps, values) = history(&api, &run, "loss").await;
    assert_eq!(steps.len(), 25_000);
    assert_eq!((steps[24_999], values[24_999]), (24_999, 12_499.5));

    let broken = "{\"key\":\"acc\",\"step\":1,\"value\":1}\n{\"key\":\"acc\",\"step\":2,\"value\":1}\n{\"key\":\"acc\",\"step\":3}\n";
    let got = api
        .raw(
            Method::POST,
            &url,
            Some(&t),
            Some(broken.into()),
            "application/x-ndjson",
        )
        .await;
    assert_error(got, StatusCode::UNPROCESSABLE_ENTITY, Some("line 3: body"));
    assert_error(
        api.get(&format!("/api/v1/runs/{run}/metrics/history?key=acc"))
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn downsampling_keeps_min_max_and_last_per_bucket(pool: PgPool) {
    let (api, t, run) = setup(&pool).await;
    let value = |s: i64| ((s * 7919) % 1000) as f64 - 500.0;
    let ndjson: String = (0..10_000)
        .map(|s| format!("{{\"key\":\"loss\",\"step\":{s},\"value\":{}}}\n", value(s)))
        .collect();
    let url = format!("/api/v1/runs/{run}/metrics/bulk");
    assert_eq!(
        api.raw(
            Method::POST,
            &url,
            Some(&t),
            Some(ndjson),
            "application/x-ndjson"
        )
        .await
        .0,
        StatusCode::OK
    );

    let (s, series) = api
        .get(&format!(
            "/api/v1/runs/{run}/metrics/series?key=loss&buckets=100"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(series["total_points"], 10_000);
    let buckets = series["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 100);
    for b in buckets {
        let (lo, hi) = (
            b["step_min"].as_i64().unwrap(),
            b["step_max"].as_i64().unwrap(),
        );
        let vals: Vec<f64> = (lo..=hi).map(value).collect();
        assert_eq!(b["count"].as_i64().unwrap(), hi - lo + 1);
        assert_eq!(
            b["min"].as_f64().unwrap(),
            vals.iter().cloned().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(
            b["max"].as_f64().unwrap(),
            vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        );
        assert_eq!(b["last"].as_f64().unwrap(), value(hi));
    }
    let covered: i64 = buckets.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(covered, 10_000);
    let (_, default) = api
        .get(&format!("/api/v1/runs/{run}/metrics/series?key=loss"))
        .await;
    assert_eq!(default["buckets"].as_array().unwrap().len(), 1000);
    let bad = api
        .get(&format!(
            "/api/v1/runs/{run}/metrics/series?key=loss&buckets=0"
        ))
        .await;
    assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY, Some("buckets"));
}

/// Reads SSE frames until one whose `type` is `kind` arrives, or fails after 10 s.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    kind: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                let v: Value = serde_json::from_str(data.trim()).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("no SSE event within 10 s");
        buf.push_str(&String::from_utf8_lossy(
            &chunk.expect("stream ended").unwrap(),
        ));
    }
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn live_events_reach_sse_subscribers(pool: PgPool) {
    let (api, t, run) = setup(&pool).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crucible_server::serve(listener, pool.clone()));
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{addr}/api/v1/events?run_id={run}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    // Give the listener time to LISTEN before the writes below.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let base = format!("http://{addr}/api/v1/runs/{run}");
    let auth = format!("Bearer {t}");
    let ok = client.post(format!("{base}/metrics")).header("authorization", &auth)
        .json(&json!({ "points": [{ "key": "loss", "step": 7, "value": 0.5 }, { "key": "acc", "step": 9, "value": 0.1 }] }))
        .send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let e = next_event(&mut stream, &mut buf, "metrics_logged").await;
    assert_eq!(
        (
            e["run_id"].as_str(),
            e["max_step"].as_i64(),
            e["count"].as_i64()
        ),
        (Some(run.as_str()), Some(9), Some(2))
    );
    assert_eq!(e["keys"], json!(["acc", "loss"]));

    let patched = client
        .patch(&base)
        .header("authorization", &auth)
        .json(&json!({ "status": "finished" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let e = next_event(&mut stream, &mut buf, "run_updated").await;
    assert_eq!(e["status"], "finished");

    // A refused write (another team) publishes nothing; the next event seen is the following real one.
    let other = token(&pool, "beta").await;
    let refused = client
        .patch(&base)
        .header("authorization", format!("Bearer {other}"))
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    api.post(
        &format!("/api/v1/runs/{run}/metrics"),
        &t,
        json!({ "points": [{ "key": "loss", "step": 8, "value": 0.4 }] }),
    )
    .await;
    let e = next_event(&mut stream, &mut buf, "metrics_logged").await;
    assert_eq!(e["max_step"], 8);
}
