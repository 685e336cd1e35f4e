//! Team-private reads: another team's token, session or SSE subscription sees none of a team's
//! runs, evals, samples, models, datasets, jobs or workers — they answer 404, as if they did not
//! exist — and writes none of them, across the REST API, the MLflow API, SSE and the dashboard's
//! server functions. A request without a token reads nothing unless the deployment opened reads.

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, assert_error, token};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

/// Alpha's objects, one of each kind.
struct Alpha {
    token: String,
    team: String,
    project: String,
    run: String,
    dataset: String,
    model: String,
    job: String,
    job_run: String,
    eval: String,
    worker: String,
}

async fn seed_alpha(api: &Api, pool: &PgPool) -> Alpha {
    let t = token(pool, "alpha").await;
    let project = api.project(&t, "secret-project").await;
    let run = api.run(&t, &project, json!({ "name": "secret-run" })).await;
    let run = run["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .post(
            &format!("/api/v1/runs/{run}/metrics"),
            &t,
            json!({ "points": [{ "key": "loss", "step": 0, "value": 1.0 }] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, ds) = api
        .raw(
            Method::POST,
            "/api/v1/datasets/import?name=secret-data&kind=math",
            Some(&t),
            Some("{\"problem\":\"1+1?\",\"answer\":\"2\"}\n".into()),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ds}");
    let dataset = ds["dataset"]["id"].as_str().unwrap().to_string();
    let model = api.local_model(&t, "secret-model", json!([])).await;
    let job = json!({ "spec": { "kind": "eval", "model_id": model, "benchmarks": ["gsm8k"] } });
    let (s, job) = api.post("/api/v1/jobs", &t, job).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let worker = json!({ "name": "alpha-box", "capabilities": { "devices": ["cpu"], "memory_gb": 8.0, "kinds": ["eval"] } });
    let (s, worker) = api.post("/api/v1/workers", &t, worker).await;
    assert_eq!(s, StatusCode::CREATED, "{worker}");
    api.read_as(&t).await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let (_, evals) = api.get(&format!("/api/v1/evals?job_id={job_id}")).await;
    Alpha {
        team: worker["team_id"].as_str().unwrap().to_string(),
        token: t,
        project,
        run,
        dataset,
        model,
        job_run: job["run_id"].as_str().unwrap().to_string(),
        job: job_id,
        eval: evals[0]["id"].as_str().expect("the job's eval").to_string(),
        worker: worker["id"].as_str().unwrap().to_string(),
    }
}

impl Alpha {
    /// Every read of one of alpha's objects.
    fn object_reads(&self) -> Vec<String> {
        let Alpha {
            project,
            run,
            dataset,
            model,
            job,
            eval,
            ..
        } = self;
        vec![
            format!("/api/v1/projects/{project}"),
            format!("/api/v1/runs/{run}"),
            format!("/api/v1/runs/{run}/metrics"),
            format!("/api/v1/runs/{run}/metrics/history?key=loss"),
            format!("/api/v1/runs/{run}/metrics/series?key=loss"),
            format!("/api/v1/runs/{run}/completions"),
            format!("/api/v1/datasets/{dataset}"),
            format!("/api/v1/datasets/{dataset}/rows"),
            format!("/api/v1/models/{model}"),
            format!("/api/v1/jobs/{job}"),
            format!("/api/v1/evals/{eval}"),
            format!("/api/v1/evals/{eval}/samples"),
        ]
    }

    /// Every id and name of alpha's that a listing must not leak.
    fn secrets(&self) -> Vec<&str> {
        vec![
            &self.project,
            &self.run,
            &self.dataset,
            &self.model,
            &self.job,
            &self.job_run,
            &self.eval,
            &self.worker,
            "secret-",
            "alpha-box",
        ]
    }
}

const LISTINGS: &[&str] = &[
    "/api/v1/projects",
    "/api/v1/runs",
    "/api/v1/datasets",
    "/api/v1/models",
    "/api/v1/jobs",
    "/api/v1/workers",
    "/api/v1/evals",
    "/api/v1/leaderboard",
];

#[track_caller]
fn assert_leaks_nothing(body: &Value, secrets: &[&str], what: &str) {
    let text = body.to_string();
    for s in secrets {
        assert!(!text.contains(s), "{what} leaks {s:?}: {text}");
    }
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn another_teams_token_reads_none_of_a_teams_objects(pool: PgPool) {
    let api = Api::new(pool.clone());
    let a = seed_alpha(&api, &pool).await;
    // Alpha itself reads every one of them.
    for path in a.object_reads() {
        let (s, body) = api.get(&path).await;
        assert_eq!(s, StatusCode::OK, "alpha reads {path}: {body}");
    }
    for path in LISTINGS {
        let (s, body) = api.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
    }
    let (_, runs) = api.get("/api/v1/runs").await;
    assert_eq!(runs["total"], 2, "alpha sees its run and its job's run");

    let b = token(&pool, "beta").await;
    api.read_as(&b).await;
    for path in a.object_reads() {
        let got = api.get(&path).await;
        assert_eq!(got.0, StatusCode::NOT_FOUND, "beta reads {path}: {}", got.1);
        assert_error(got, StatusCode::NOT_FOUND, None);
    }
    // An id that never existed answers exactly the same: existence does not leak.
    let (s, never) = api
        .get(&format!("/api/v1/runs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(never["error"]["code"], "not_found");
    for path in LISTINGS {
        let (s, body) = api.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        assert_leaks_nothing(&body, &a.secrets(), path);
        // Asking for alpha's team by id is no way around it.
        let (s, body) = api.get(&format!("{path}?team_id={}", a.team)).await;
        assert_eq!(s, StatusCode::OK, "{path}?team_id: {body}");
        assert_leaks_nothing(&body, &a.secrets(), path);
    }
    let (_, by_project) = api
        .get(&format!("/api/v1/runs?project_id={}", a.project))
        .await;
    assert_eq!(by_project["total"], 0);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn reads_without_a_token_are_refused_unless_the_deployment_opens_them(pool: PgPool) {
    let api = Api::new(pool.clone());
    let a = seed_alpha(&api, &pool).await;
    let anonymous = Api::new(pool.clone());
    for path in a
        .object_reads()
        .iter()
        .map(String::as_str)
        .chain(LISTINGS.iter().copied())
    {
        let got = anonymous.get(path).await;
        assert_error(got, StatusCode::UNAUTHORIZED, None);
    }
    let (s, _) = anonymous.get("/api/v1/health").await;
    assert_eq!(s, StatusCode::OK, "health stays public for load balancers");
    let garbage = anonymous
        .call(Method::GET, "/api/v1/runs", Some("crc_not-a-token"), None)
        .await;
    assert_error(garbage, StatusCode::UNAUTHORIZED, None);

    // Open reads are a deliberate setting: without a token everything reads; a token still scopes.
    let open = Api::with_open_reads(pool.clone());
    for path in a.object_reads() {
        let (s, body) = open.get(&path).await;
        assert_eq!(s, StatusCode::OK, "open read of {path}: {body}");
    }
    let b = token(&pool, "beta").await;
    let (s, _) = open
        .call(
            Method::GET,
            &format!("/api/v1/runs/{}", a.run),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn another_teams_token_writes_none_of_a_teams_objects(pool: PgPool) {
    let api = Api::new(pool.clone());
    let a = seed_alpha(&api, &pool).await;
    let b = token(&pool, "beta").await;
    let Alpha {
        run,
        job,
        eval,
        worker,
        project,
        model,
        ..
    } = &a;
    let beta_worker = json!({ "name": "beta-box", "capabilities": { "devices": ["cpu"], "memory_gb": 8.0, "kinds": ["eval"] } });
    let (_, bw) = api.post("/api/v1/workers", &b, beta_worker).await;
    let bw = bw["id"].as_str().unwrap().to_string();
    let writes: Vec<(Method, String, Value)> = vec![
        (
            Method::PATCH,
            format!("/api/v1/runs/{run}"),
            json!({ "status": "killed" }),
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run}/params"),
            json!({ "lr": "1" }),
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run}/tags"),
            json!({ "t": "1" }),
        ),
        (
            Method::DELETE,
            format!("/api/v1/runs/{run}/tags/t"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run}/metrics"),
            json!({ "points": [{ "key": "x", "step": 0, "value": 1.0 }] }),
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run}/completions"),
            json!({ "completions": [] }),
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{job}/cancel"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{job}/heartbeat"),
            json!({ "worker_id": bw }),
        ),
        (
            Method::POST,
            format!("/api/v1/jobs/{job}/complete"),
            json!({ "worker_id": bw, "status": "failed", "error": "x" }),
        ),
        (
            Method::POST,
            format!("/api/v1/evals/{eval}/scores"),
            json!({ "worker_id": bw, "problems": 1, "scores": [] }),
        ),
        (
            Method::POST,
            format!("/api/v1/workers/{worker}/lease"),
            json!({}),
        ),
    ];
    for (method, path, body) in writes {
        let body = (!body.is_null()).then_some(body);
        let (s, v) = api.call(method.clone(), &path, Some(&b), body).await;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::UNPROCESSABLE_ENTITY,
            "beta {method} {path}: {s} {v}"
        );
    }
    // Objects of alpha's named in beta's own writes are "not found" too.
    assert_error(
        api.post("/api/v1/runs", &b, json!({ "project_id": project }))
            .await,
        StatusCode::NOT_FOUND,
        Some("project_id"),
    );
    let job = json!({ "spec": { "kind": "eval", "model_id": model, "benchmarks": ["gsm8k"] } });
    assert_error(
        api.post("/api/v1/jobs", &b, job).await,
        StatusCode::NOT_FOUND,
        Some("spec.model_id"),
    );
    // Nothing changed.
    api.read_as(&a.token).await;
    let (_, r) = api.get(&format!("/api/v1/runs/{run}")).await;
    assert_eq!(
        (r["status"].as_str(), &r["params"]),
        (Some("running"), &json!({}))
    );
    let (_, j) = api.get(&format!("/api/v1/jobs/{}", a.job)).await;
    assert_eq!(j["status"], "queued");
    let (_, m) = api.get(&format!("/api/v1/runs/{run}/metrics")).await;
    assert_eq!(m.as_array().map(Vec::len), Some(1), "{m}");
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn the_mlflow_api_is_team_private(pool: PgPool) {
    let api = Api::new(pool.clone());
    let a = seed_alpha(&api, &pool).await;
    let b = token(&pool, "beta").await;
    let ml = |p: &str| format!("/api/2.0/mlflow/{p}");
    for path in [
        ml(&format!("runs/get?run_id={}", a.run)),
        ml(&format!(
            "metrics/get-history?run_id={}&metric_key=loss",
            a.run
        )),
        ml(&format!("experiments/get?experiment_id={}", a.project)),
        ml("experiments/get-by-name?experiment_name=secret-project"),
    ] {
        let (s, v) = api.call(Method::GET, &path, Some(&b), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error_code"], "RESOURCE_DOES_NOT_EXIST", "{path}: {v}");
        let (s, v) = api.call(Method::GET, &path, Some(&a.token), None).await;
        assert_eq!(s, StatusCode::OK, "alpha {path}: {v}");
    }
    let search = json!({ "experiment_ids": [a.project] });
    let (s, v) = api.post(&ml("runs/search"), &b, search.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = api.post(&ml("runs/search"), &a.token, search).await;
    assert_eq!(
        (s, v["runs"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (s, _) = api
        .post(
            &ml("runs/log-metric"),
            &b,
            json!({ "run_id": a.run, "key": "x", "value": 1, "timestamp": 1, "step": 0 }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .call(
            Method::GET,
            &ml(&format!("runs/get?run_id={}", a.run)),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// The `type` of the next SSE event, or `None` when none arrives within `wait`.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    wait: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                return Some(serde_json::from_str(data.trim()).unwrap());
            }
            continue;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .ok()??;
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn sse_subscribers_hear_only_their_own_team(pool: PgPool) {
    let api = Api::new(pool.clone());
    let a = seed_alpha(&api, &pool).await;
    let b = token(&pool, "beta").await;
    let beta_project = api.project(&b, "beta-project").await;
    let beta_run = api.run(&b, &beta_project, json!({})).await;
    let beta_run = beta_run["id"].as_str().unwrap().to_string();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crucible_server::serve(listener, pool.clone()));
    let client = reqwest::Client::new();
    let events = format!("http://{addr}/api/v1/events");
    let refused = client.get(&events).send().await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "no token, no stream"
    );
    let subscribe = |t: String| {
        let (client, events) = (client.clone(), events.clone());
        async move {
            let res = client.get(&events).bearer_auth(t).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.bytes_stream()
        }
    };
    let (mut alpha_stream, mut beta_stream) =
        (subscribe(a.token.clone()).await, subscribe(b.clone()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = |t: String, run: String| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("http://{addr}/api/v1/runs/{run}/metrics"))
                .bearer_auth(t)
                .json(&json!({ "points": [{ "key": "loss", "step": 1, "value": 0.5 }] }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    };
    log(a.token.clone(), a.run.clone()).await;
    log(b.clone(), beta_run.clone()).await;
    let (mut abuf, mut bbuf) = (String::new(), String::new());
    let wait = Duration::from_secs(10);
    let first_alpha = next_event(&mut alpha_stream, &mut abuf, wait)
        .await
        .expect("alpha's event");
    assert_eq!(first_alpha["run_id"], a.run.as_str());
    // Beta's first event is its own run's, though alpha's was written first; nothing else follows.
    let first_beta = next_event(&mut beta_stream, &mut bbuf, wait)
        .await
        .expect("beta's event");
    assert_eq!(first_beta["run_id"], beta_run.as_str(), "{first_beta}");
    assert_eq!(
        next_event(&mut alpha_stream, &mut abuf, Duration::from_millis(700)).await,
        None
    );
    // Filtering by alpha's run id gives beta nothing either.
    let mut sneaky = client
        .get(format!("{events}?run_id={}", a.run))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    tokio::time::sleep(Duration::from_millis(300)).await;
    log(a.token.clone(), a.run.clone()).await;
    let mut sbuf = String::new();
    assert_eq!(
        next_event(&mut sneaky, &mut sbuf, Duration::from_millis(1500)).await,
        None
    );
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn the_dashboard_shows_a_session_only_its_own_team(pool: PgPool) {
    let api = Api::new(pool.clone());
    let a = seed_alpha(&api, &pool).await;
    // Alpha's session sees its objects on the pages and through the server functions.
    let (_, page) = api.html("/").await;
    assert!(
        page.contains("secret-run") && page.contains("team alpha"),
        "{page}"
    );
    let (s, run) = api
        .call(
            Method::POST,
            "/dash/run",
            None,
            Some(json!({ "id": a.run, "compare": [] })),
        )
        .await;
    assert_eq!(
        (s, run["run"]["id"].as_str()),
        (StatusCode::OK, Some(a.run.as_str()))
    );

    let b = token(&pool, "beta").await;
    api.read_as(&b).await;
    for path in [
        "/",
        "/evals",
        "/leaderboard",
        "/datasets",
        "/models",
        "/jobs",
        "/jobs/new",
    ] {
        let (s, page) = api.html(path).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            page.contains("team beta"),
            "{path} does not say who is signed in"
        );
        for secret in a.secrets() {
            assert!(!page.contains(secret), "{path} shows beta {secret:?}");
        }
    }
    for path in [
        format!("/runs/{}", a.run),
        format!("/evals/{}", a.eval),
        format!("/datasets/{}", a.dataset),
    ] {
        let (_, page) = api.html(&path).await;
        assert!(page.contains("not found"), "{path}: {page}");
        assert!(!page.contains("secret-"), "{path} shows alpha's data");
    }
    for (endpoint, args) in [
        ("run", json!({ "id": a.run, "compare": [] })),
        ("charts", json!({ "runs": [a.run] })),
        ("completions", json!({ "run_id": a.run, "step": null })),
        ("eval", json!({ "id": a.eval })),
        (
            "samples",
            json!({ "id": a.eval, "filter": "all", "offset": 0 }),
        ),
        ("dataset", json!({ "id": a.dataset, "offset": 0 })),
    ] {
        let (s, v) = api
            .call(Method::POST, &format!("/dash/{endpoint}"), None, Some(args))
            .await;
        assert_ne!(s, StatusCode::OK, "beta's session reads {endpoint}: {v}");
        assert_leaks_nothing(&v, &a.secrets(), endpoint);
    }
    for endpoint in [
        "runs",
        "evals",
        "datasets",
        "models",
        "jobs",
        "submit-choices",
    ] {
        let args = if endpoint == "runs" {
            json!({ "filter": {} })
        } else {
            json!({})
        };
        let (s, v) = api
            .call(Method::POST, &format!("/dash/{endpoint}"), None, Some(args))
            .await;
        assert_eq!(s, StatusCode::OK, "{endpoint}: {v}");
        assert_leaks_nothing(&v, &a.secrets(), endpoint);
    }

    // Signed out, the pages show nothing and say how to sign in.
    let anonymous = Api::new(pool.clone());
    let (_, page) = anonymous.html("/").await;
    assert!(
        page.contains("Sign in") && !page.contains("secret-run"),
        "{page}"
    );
    let (s, _) = anonymous
        .call(
            Method::POST,
            "/dash/runs",
            None,
            Some(json!({ "filter": {} })),
        )
        .await;
    assert_ne!(s, StatusCode::OK);
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn sign_in_links_work_once_and_sessions_end_with_their_token(pool: PgPool) {
    let api = Api::new(pool.clone());
    let t = token(&pool, "alpha").await;
    let code = common::sign_in_code(&pool, &t).await;
    let redeem = |code: String| {
        let api = &api;
        async move {
            let req = axum::http::Request::builder()
                .uri(format!("/auth/link?code={code}"))
                .body(axum::body::Body::empty())
                .unwrap();
            tower::ServiceExt::oneshot(api.app.clone(), req)
                .await
                .unwrap()
        }
    };
    let first = redeem(code.clone()).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()["location"], "/");
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("crucible_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let again = redeem(code).await;
    assert_eq!(again.headers()["location"], "/signin?error=link");
    assert!(again.headers().get("set-cookie").is_none());

    // Revoking the token ends the session made from it.
    let secret = cookie
        .trim_start_matches("crucible_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let team = crucible_server::store::sessions::team(&pool, &secret)
        .await
        .unwrap();
    assert_eq!(team.name, "alpha");
    sqlx::query("UPDATE api_tokens SET revoked_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        crucible_server::store::sessions::team(&pool, &secret)
            .await
            .is_err()
    );
}
