//! The dashboard: every page rendered on the server with its data, the submit form's validation,
//! and — in headless Chromium — hydration, live updates over SSE, client-side navigation, the form
//! in a real browser, and a screenshot of every page.

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, token};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::path::PathBuf;
use std::time::Duration;

/// What [`seed`] created.
struct Seeded {
    token: String,
    run: String,
    other_run: String,
    eval: String,
    model: String,
    dataset: String,
}

/// A valid 1×1 red PNG, for the run page's image preview.
const PNG_1X1: [u8; 70] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A small but complete team: two runs with metrics, a dataset, a model, a finished eval with
/// right, wrong and mixed problems, a worker and its job.
async fn seed(api: &Api, pool: &PgPool) -> Seeded {
    let t = token(pool, "alpha").await;
    api.read_as(&t).await;
    let project = api.project(&t, "gsm8k-sft").await;
    let run = api
        .run(
            &t,
            &project,
            json!({ "name": "sft-lr3e-4", "kind": "sft", "status": "running",
                    "params": { "lr": "3e-4" }, "tags": { "stage": "sft" } }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other_run = api
        .run(
            &t,
            &project,
            json!({ "name": "sft-lr1e-4", "kind": "sft", "status": "finished" }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (id, scale) in [(&run, 1.0), (&other_run, 1.5)] {
        let points: Vec<Value> = (0..50)
            .map(|s| json!({ "key": "loss", "step": s, "value": scale * 3.0 / (1.0 + s as f64) }))
            .collect();
        let (s, b) = api
            .post(
                &format!("/api/v1/runs/{id}/metrics"),
                &t,
                json!({ "points": points }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // Artifacts of the first run, logged through MLflow's artifact proxy.
    for (path, bytes) in [
        ("plots/loss.png", PNG_1X1.to_vec()),
        ("notes.txt", b"lr sweep".to_vec()),
    ] {
        use tower::ServiceExt;
        let request = axum::http::Request::put(format!(
            "/api/2.0/mlflow-artifacts/artifacts/{run}/artifacts/{path}"
        ))
        .header("authorization", format!("Bearer {t}"))
        .body(axum::body::Body::from(bytes))
        .unwrap();
        let res = api.app.clone().oneshot(request).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // Rollouts of the first run at steps 1 and 2: one group of two completions per step.
    let rollout = |step: i64, sample: i32, reward: f64| {
        json!({ "step": step, "group_idx": 0, "sample_idx": sample, "problem_id": format!("rl-s1d1-{step}"),
                "prompt": format!("Start with {step}. Add 2. What is the result?"),
                "completion": format!("rollout {step}.{sample}"), "reward": reward,
                "verdict": if reward > 0.0 { "correct" } else { "wrong" }, "tokens": 9, "truncated": false })
    };
    let (s, b) = api
        .post(
            &format!("/api/v1/runs/{run}/completions"),
            &t,
            json!({ "completions": [rollout(1, 0, 0.0), rollout(1, 1, 0.0), rollout(2, 0, 1.0), rollout(2, 1, 0.0)] }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, ds) = api
        .raw(
            Method::POST,
            "/api/v1/datasets/import?name=arith&kind=math",
            Some(&t),
            Some("{\"problem\":\"What is 17 + 25?\",\"answer\":\"42\"}\n{\"problem\":\"What is 6 * 7?\",\"answer\":\"42\"}\n".into()),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ds}");
    let leased = leased_eval(api, &t, "mimo-tiny", 2).await;
    let sample = |p: i32, s: i32, correct: bool| {
        json!({ "problem_idx": p, "sample_idx": s, "problem_id": format!("syn-{p}"),
                "prompt": format!("problem {p}"), "completion": format!("answer \\boxed{{{s}}}"),
                "extracted": s.to_string(), "verdict": if correct { "correct" } else { "wrong" },
                "correct": correct, "reward": if correct { 1.0 } else { 0.0 }, "tokens": 7, "truncated": false })
    };
    // Problem 0 all right, 1 all wrong, 2 mixed.
    let samples = json!({ "worker_id": leased.worker, "samples": [
        sample(0, 0, true), sample(0, 1, true), sample(1, 0, false), sample(1, 1, false),
        sample(2, 0, true), sample(2, 1, false)] });
    let (s, b) = api
        .post(
            &format!("/api/v1/evals/{}/samples", leased.eval),
            &t,
            samples,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    finish_eval(api, &t, &leased, 3, (0.5, 0.1667, 0.8333)).await;
    Seeded {
        token: t,
        run,
        other_run,
        eval: leased.eval,
        model: leased.model,
        dataset: ds["dataset"]["id"].as_str().unwrap().to_string(),
    }
}

/// A registered model with an eval job on `synthetic` that a fresh worker has leased.
struct Leased {
    model: String,
    team: String,
    worker: String,
    eval: String,
}

/// Registers model `name` for token `t`, queues an eval of it with `n_samples`, and leases the
/// job to a new worker.
async fn leased_eval(api: &Api, t: &str, name: &str, n_samples: u32) -> Leased {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures":["MiMoForCausalLM"]}"#,
    )
    .unwrap();
    let (s, m) = api
        .post(
            "/api/v1/models",
            t,
            json!({ "name": name, "source": { "kind": "hf_local", "path": dir } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let model = m["id"].as_str().unwrap().to_string();
    let (s, job) = api
        .post(
            "/api/v1/jobs",
            t,
            json!({ "spec": { "kind": "eval", "model_id": model, "benchmarks": ["synthetic"], "n_samples": n_samples } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let (_, w) = api
        .post(
            "/api/v1/workers",
            t,
            json!({ "name": "gpu-box-7", "capabilities": { "devices": ["cpu"], "memory_gb": 16.0, "kinds": ["eval"] } }),
        )
        .await;
    let worker = w["id"].as_str().unwrap().to_string();
    let (_, lease) = api
        .post(&format!("/api/v1/workers/{worker}/lease"), t, json!({}))
        .await;
    Leased {
        model,
        team: m["team_id"].as_str().unwrap().to_string(),
        worker,
        eval: lease["evals"][0]["eval_id"].as_str().unwrap().to_string(),
    }
}

/// Finishes a leased eval with its pass@1 `(value, ci_low, ci_high)` over `problems`.
async fn finish_eval(api: &Api, t: &str, leased: &Leased, problems: i32, pass1: (f64, f64, f64)) {
    let (value, lo, hi) = pass1;
    let scores = json!({ "worker_id": leased.worker, "problems": problems, "scores": [
        { "metric": "pass@1", "value": value, "ci_low": lo, "ci_high": hi, "n": problems }] });
    let (s, b) = api
        .post(&format!("/api/v1/evals/{}/scores", leased.eval), t, scores)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[track_caller]
fn assert_page(got: &(StatusCode, String), expect: &[&str], absent: &[&str]) {
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    for e in expect {
        assert!(got.1.contains(e), "page lacks {e:?}:\n{}", got.1);
    }
    for a in absent {
        assert!(!got.1.contains(a), "page shows {a:?}:\n{}", got.1);
    }
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn every_page_renders_its_data_on_the_server(pool: PgPool) {
    let api = Api::new(pool.clone());
    let s = seed(&api, &pool).await;

    let runs = api.html("/").await;
    // The two training runs and the eval job's run.
    assert_page(
        &runs,
        &[
            "sft-lr3e-4",
            "sft-lr1e-4",
            "eval mimo-tiny on synthetic",
            "3 runs",
            "gsm8k-sft",
            "stage:sft",
        ],
        &[],
    );
    let finished = api.html("/?status=finished").await;
    assert_page(&finished, &["sft-lr1e-4", "1 run<"], &["sft-lr3e-4"]);
    let searched = api.html("/?q=3e-4&sort=name").await;
    assert_page(
        &searched,
        &["sft-lr3e-4", "1 run<", "Name ▲"],
        &["sft-lr1e-4"],
    );
    let by_kind = api.html("/?kind=eval").await;
    assert_page(
        &by_kind,
        &["eval mimo-tiny on synthetic", "1 run<"],
        &["sft-lr3e-4"],
    );
    let by_tag = api.html("/?tag=stage:sft").await;
    assert_page(&by_tag, &["sft-lr3e-4", "1 run<"], &["sft-lr1e-4"]);

    let run = api.html(&format!("/runs/{}", s.run)).await;
    assert_page(
        &run,
        &[
            "sft-lr3e-4",
            // Its artifacts, the image shown inline.
            r#"<section id="artifacts">"#,
            "plots/loss.png",
            "notes.txt",
            r#"class="artifact-preview""#,
            r#"data-key="loss""#,
            r#"data-points="50""#,
            "3e-4",
            "sft-lr1e-4",
            // The latest step's rollouts, with the step picker.
            "Completions at step 2",
            "group 0 · rl-s1d1-2 · 2 completions · mean reward 0.500",
            "rollout 2.1",
            r#"<option value="1">step 1</option>"#,
        ],
        &["rollout 1.0"],
    );
    let step1 = api.html(&format!("/runs/{}?step=1", s.run)).await;
    assert_page(
        &step1,
        &["Completions at step 1", "mean reward 0.000", "rollout 1.0"],
        &["rollout 2.1"],
    );
    let compared = api
        .html(&format!("/runs/{}?compare={}", s.run, s.other_run))
        .await;
    assert_page(&compared, &[r#"data-points="100""#, "■ "], &[]);

    let eval = api.html(&format!("/evals/{}", s.eval)).await;
    assert_page(
        &eval,
        &[
            "mimo-tiny on synthetic",
            "pass@1",
            "[0.167, 0.833]",
            "syn-0",
            "syn-1",
            "syn-2",
        ],
        &[],
    );
    let wrong = api
        .html(&format!("/evals/{}?filter=all_wrong", s.eval))
        .await;
    assert_page(&wrong, &["syn-1", "0/2 correct"], &["syn-0", "syn-2"]);
    let mixed = api.html(&format!("/evals/{}?filter=mixed", s.eval)).await;
    assert_page(&mixed, &["syn-2", "1/2 correct"], &["syn-0", "syn-1"]);
    assert_page(
        &api.html("/evals").await,
        &["mimo-tiny", "pass@1 0.500 [0.167, 0.833]"],
        &[],
    );

    let board = api.html("/leaderboard").await;
    assert_page(
        &board,
        &[
            "mimo-tiny",
            "synthetic",
            &format!("/evals/{}", s.eval),
            "[0.17, 0.83]",
        ],
        &[],
    );

    assert_page(&api.html("/datasets").await, &["arith", "v1", "math"], &[]);
    assert_page(
        &api.html(&format!("/datasets/{}", s.dataset)).await,
        &["What is 17 + 25?", "2 rows"],
        &[],
    );
    assert_page(&api.html("/models").await, &["mimo-tiny", "HF folder"], &[]);
    assert_page(
        &api.html("/jobs").await,
        &["gpu-box-7", "eval", "running", "1/3"],
        &[],
    );
    assert_page(
        &api.html("/jobs/new").await,
        &["mimo-tiny", "synthetic", "gsm8k", "team alpha", "Sign out"],
        &["form[token]"],
    );

    let missing = api.html(&format!("/runs/{}", uuid::Uuid::new_v4())).await;
    assert_page(&missing, &["not found"], &[]);
    let garbage = api.html("/runs/not-a-uuid").await;
    assert_page(&garbage, &["does not name a run id"], &[]);
}

/// Posts the submit form as a browser without JavaScript would, returning the outcome JSON.
/// The leaderboard pages its models on the server (100 a page, best mean first) and filters by
/// team.
#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn the_leaderboard_pages_and_filters_by_team(pool: PgPool) {
    let api = Api::new(pool.clone());
    let (alpha, beta) = (token(&pool, "alpha").await, token(&pool, "beta").await);
    for i in 0..101 {
        let leased = leased_eval(&api, &alpha, &format!("m{i:03}"), 1).await;
        let v = f64::from(i) / 1000.0;
        finish_eval(&api, &alpha, &leased, 10, (v, v / 2.0, v + 0.01)).await;
    }
    let best = leased_eval(&api, &beta, "beta-best", 1).await;
    finish_eval(&api, &beta, &best, 10, (0.9, 0.8, 0.95)).await;

    // The board is the signed-in team's: alpha's 101 models, never beta's.
    api.read_as(&alpha).await;
    assert_page(
        &api.html("/leaderboard").await,
        &["101 models × 1 benchmarks", "m100", "m001", "page 1 of 2"],
        &["m000", "beta-best"],
    );
    assert_page(
        &api.html("/leaderboard?page=1").await,
        &["m000", "page 2 of 2"],
        &["beta-best", "m001"],
    );
    // Asking for another team's board shows nothing of it.
    assert_page(
        &api.html(&format!("/leaderboard?team={}", best.team)).await,
        &[],
        &["beta-best", "m100"],
    );
    // Sorted by model name instead, the first page starts with the alphabetically first models.
    assert_page(
        &api.html("/leaderboard?sort=model").await,
        &["m000", "m099"],
        &["m100", "beta-best"],
    );
    api.read_as(&beta).await;
    assert_page(
        &api.html("/leaderboard").await,
        &["1 models × 1 benchmarks", "beta-best"],
        &["m100", "m000"],
    );
}

async fn submit(api: &Api, fields: &[(&str, &str)]) -> Value {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("form%5B{k}%5D={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let (s, v) = api
        .raw(
            Method::POST,
            "/dash/submit-eval",
            None,
            Some(body),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn job_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn the_submit_form_names_the_bad_field_and_queues_nothing(pool: PgPool) {
    let api = Api::new(pool.clone());
    let s = seed(&api, &pool).await;
    let before = job_count(&pool).await;
    let good = [
        ("model_id", s.model.as_str()),
        ("benchmark", "synthetic"),
        ("n_samples", "2"),
        ("limit", "5"),
        ("temperature", "0.6"),
        ("max_tokens", "64"),
    ];
    let with = |field: &str, value: &'static str| -> Vec<(&str, &str)> {
        good.iter()
            .map(|(k, v)| if *k == field { (*k, value) } else { (*k, *v) })
            .collect()
    };
    for (field, value) in [
        ("model_id", "not-a-model"),
        ("benchmark", ""),
        ("benchmark", "gsm9k"),
        ("n_samples", "many"),
        ("n_samples", "0"),
        ("limit", "-3"),
        ("temperature", "hot"),
        ("temperature", "50"),
        ("max_tokens", "0"),
        ("max_tokens", "1000000000"),
    ] {
        let outcome = submit(&api, &with(field, value)).await;
        assert_eq!(
            outcome["Invalid"]["field"], field,
            "{field}={value:?}: {outcome}"
        );
        assert!(
            outcome["Invalid"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // A model id that parses but is unknown is caught by the server's own submission rules.
    let unknown = uuid::Uuid::new_v4().to_string();
    let outcome = submit(&api, &[("model_id", &unknown), ("benchmark", "synthetic")]).await;
    assert!(outcome.get("Invalid").is_some(), "{outcome}");
    assert_eq!(
        job_count(&pool).await,
        before,
        "a rejected form queues nothing"
    );

    let outcome = submit(&api, &good).await;
    let job = outcome["Queued"]["job_id"]
        .as_str()
        .expect("queued")
        .to_string();
    let (_, j) = api.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(j["spec"]["n_samples"], 2);
    assert_eq!(j["spec"]["limit"], 5);
    assert_eq!(j["spec"]["sampling"]["max_new_tokens"], 64);
    assert_eq!(job_count(&pool).await, before + 1);
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium

/// Where the browser test leaves its screenshots.
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Why the browser test cannot run here, if it cannot.
fn browser_missing() -> Option<String> {
    let chromedriver =
        std::env::var("CRUCIBLE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    if std::process::Command::new(&chromedriver)
        .arg("--version")
        .output()
        .is_err()
    {
        return Some(format!(
            "{chromedriver} is not installed (apt-get install chromium chromium-driver)"
        ));
    }
    if crucible_server::dashboard::find_site_root().is_none() {
        return Some("the hydration bundle is not built (scripts/build-site.sh)".into());
    }
    None
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let chromedriver =
        std::env::var("CRUCIBLE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let child = tokio::process::Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let mut chrome = json!({ "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1360,1000"] });
    if let Ok(bin) = std::env::var("CRUCIBLE_CHROMIUM") {
        chrome["binary"] = json!(bin);
    } else if std::path::Path::new("/usr/bin/chromium").exists() {
        chrome["binary"] = json!("/usr/bin/chromium");
    }
    caps.insert("goog:chromeOptions".into(), chrome);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Waits up to 15 s for `css` to match, failing with the page source otherwise.
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    for _ in 0..150 {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            return el;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let source = c.source().await.unwrap_or_default();
    panic!("{css} never appeared; page:\n{source}");
}

/// Waits up to 15 s for an element matching `css` whose text contains `needle`. The page may
/// re-render the element between finding it and reading it (a second error message replaces the
/// first), so a stale element is found again rather than failing the test.
async fn wait_for_text(c: &Client, css: &str, needle: &str) {
    for _ in 0..150 {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && el.text().await.is_ok_and(|text| text.contains(needle))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let source = c.source().await.unwrap_or_default();
    panic!("{css} never said {needle:?}; page:\n{source}");
}

/// Waits for the bundle to hydrate the page and its SSE connection to open.
async fn wait_live(c: &Client) {
    wait_for(c, r#"#live[data-state="live"]"#).await;
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

#[sqlx::test(migrator = "crucible_server::MIGRATOR")]
async fn dashboard_in_headless_chromium(pool: PgPool) {
    if let Some(why) = browser_missing() {
        if std::env::var_os("CRUCIBLE_REQUIRE_BROWSER").is_some() {
            panic!("the browser test cannot run: {why}");
        }
        eprintln!("\n*** SKIPPED dashboard_in_headless_chromium: {why} ***\n");
        return;
    }
    let api = Api::new(pool.clone());
    let s = seed(&api, &pool).await;
    // The served app runs as a server does: on its own multi-threaded runtime (the test's is
    // single-threaded) with its own pool (a test pool holds only 5 connections).
    let options = (*pool.connect_options()).clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let served = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .connect_with(options)
                .await
                .unwrap();
            crucible_server::serve(listener, served).await
        })
    });
    let http = reqwest::Client::new();
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // Signed out, the dashboard shows nothing of the team's and offers to sign in.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(&c, r#"#viewer a[href="/signin"]"#).await;
    assert!(c.find_all(Locator::Css("#runs")).await.unwrap().is_empty());
    // The live stream refuses a signed-out browser, which then says offline, not reconnecting.
    wait_for(&c, r#"#live[data-state="offline"]"#).await;
    // The link `crucible up` prints signs the browser in, and the code leaves the address bar.
    let code = common::sign_in_code(&pool, &s.token).await;
    c.goto(&format!("{base}/auth/link?code={code}"))
        .await
        .unwrap();
    wait_for(&c, r#"#viewer[data-team="alpha"]"#).await;
    wait_for(&c, "#runs").await;
    let url = c.current_url().await.unwrap();
    assert_eq!((url.path(), url.query()), ("/", None), "{url}");
    assert!(!url.as_str().contains(&code));

    // Every page opens, hydrates and is captured.
    let pages = [
        ("runs", "/".to_string(), "#runs"),
        (
            "run",
            format!("/runs/{}", s.run),
            r#"figure.chart[data-key="loss"]"#,
        ),
        ("evals", "/evals".to_string(), "#evals"),
        ("eval", format!("/evals/{}", s.eval), "#problems"),
        ("leaderboard", "/leaderboard".to_string(), "#leaderboard"),
        ("datasets", "/datasets".to_string(), "#datasets"),
        (
            "dataset",
            format!("/datasets/{}", s.dataset),
            "#dataset-rows",
        ),
        ("models", "/models".to_string(), "#models"),
        ("jobs", "/jobs".to_string(), "#workers"),
        ("submit", "/jobs/new".to_string(), "#submit-eval"),
    ];
    for (name, path, ready) in &pages {
        c.goto(&format!("{base}{path}")).await.unwrap();
        wait_for(&c, ready).await;
        wait_live(&c).await;
        screenshot(&c, name).await;
    }
    // The run page's image preview loads through the REST API with the browser's session.
    c.goto(&format!("{base}/runs/{}", s.run)).await.unwrap();
    wait_for(&c, "img.artifact-preview").await;
    let mut loaded = serde_json::Value::Null;
    for _ in 0..50 {
        loaded = c
            .execute(
                "const i = document.querySelector('img.artifact-preview'); return i.complete && i.naturalWidth;",
                vec![],
            )
            .await
            .unwrap();
        if loaded.as_i64() == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(loaded, json!(1), "the artifact image did not load");

    // Live: a status change and new points reach the open run page without a reload.
    c.goto(&format!("{base}/runs/{}?compare={}", s.run, s.other_run))
        .await
        .unwrap();
    wait_live(&c).await;
    wait_for(&c, r#"figure.chart[data-key="loss"][data-points="100"]"#).await;
    c.execute(
        "window.__not_reloaded = true; window.__events = 0;
         new EventSource('/api/v1/events').addEventListener('run_updated', () => window.__events++);",
        vec![],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Written over HTTP like a trainer's; the page hears it through Postgres NOTIFY and SSE.
    let r = http
        .patch(format!("{base}/api/v1/runs/{}", s.run))
        .bearer_auth(&s.token)
        .json(&json!({ "status": "finished" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..50 {
        if c.execute("return window.__events;", vec![]).await.unwrap() != json!(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        c.execute("return window.__events;", vec![]).await.unwrap(),
        json!(1),
        "the browser got the SSE event"
    );
    wait_for(&c, r#"h1 .badge[data-status="finished"]"#).await;
    let points: Vec<Value> = (50..60)
        .map(|st| json!({ "key": "loss", "step": st, "value": 0.05 }))
        .collect();
    let r = http
        .post(format!("{base}/api/v1/runs/{}/metrics", s.run))
        .bearer_auth(&s.token)
        .json(&json!({ "points": points }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    wait_for(&c, r#"figure.chart[data-key="loss"][data-points="110"]"#).await;
    let same_page = c
        .execute("return window.__not_reloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_page,
        json!(true),
        "the page was reloaded instead of updated"
    );
    // The x-axis and smoothing controls redraw on the client.
    c.find(Locator::Css("#x-axis"))
        .await
        .unwrap()
        .select_by_value("time")
        .await
        .unwrap();
    wait_for(&c, "figure.chart text.tick").await;
    screenshot(&c, "run-live-compare").await;

    // Client-side navigation in the sample browser.
    c.goto(&format!("{base}/evals/{}", s.eval)).await.unwrap();
    wait_live(&c).await;
    wait_for(&c, r#"details.problem.right"#).await;
    c.find(Locator::Css(r#"#sample-filters a[href*="all_wrong"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, r#"a.tab.active[href*="all_wrong"]"#).await;
    for _ in 0..100 {
        if c.find_all(Locator::Css("details.problem.right"))
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.find_all(Locator::Css("details.problem.right"))
            .await
            .unwrap()
            .is_empty()
    );
    wait_for(&c, r#"details.problem.wrong[data-problem="syn-1"]"#).await;
    screenshot(&c, "eval-all-wrong").await;

    // The submit form in the browser, as the signed-in team: a bad field is named, then a good
    // submission queues — no token pasted anywhere.
    c.goto(&format!("{base}/jobs/new")).await.unwrap();
    wait_live(&c).await;
    let field = |name: &'static str| {
        let c = c.clone();
        async move {
            c.find(Locator::Css(&format!(r#"[name="form[{name}]"]"#)))
                .await
                .unwrap()
        }
    };
    assert!(
        c.find_all(Locator::Css(r#"[name="form[token]"]"#))
            .await
            .unwrap()
            .is_empty()
    );
    field("temperature").await.send_keys("hot").await.unwrap();
    field("model_id")
        .await
        .select_by_value(&s.model)
        .await
        .unwrap();
    field("benchmark")
        .await
        .select_by_value("synthetic")
        .await
        .unwrap();
    c.find(Locator::Css("#submit-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, r#".field-error[data-field="temperature"]"#).await;
    screenshot(&c, "submit-invalid").await;
    let before = job_count(&pool).await;
    field("temperature").await.clear().await.unwrap();
    field("n_samples").await.send_keys("2").await.unwrap();
    field("limit").await.send_keys("4").await.unwrap();
    c.find(Locator::Css("#submit-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let ok = wait_for(&c, "#submit-result .ok").await;
    let job = ok.attr("data-job").await.unwrap().expect("job id");
    screenshot(&c, "submit-queued").await;
    assert_eq!(job_count(&pool).await, before + 1);
    let (st, j) = api.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(j["spec"]["limit"], 4);

    // Sign-out ends the session: the pages show nothing again.
    c.find(Locator::Css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#signin").await;
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(&c, r#"#viewer a[href="/signin"]"#).await;
    assert!(c.find_all(Locator::Css("#runs")).await.unwrap().is_empty());
    // The printed link was spent; a wrong token is refused with a clear message.
    c.goto(&format!("{base}/auth/link?code={code}"))
        .await
        .unwrap();
    wait_for_text(&c, "#signin-error", "already used").await;
    let sign_in_with = |token: String| {
        let c = c.clone();
        async move {
            let input = c
                .find(Locator::Css(r#"#signin [name="token"]"#))
                .await
                .unwrap();
            input.clear().await.unwrap();
            input.send_keys(&token).await.unwrap();
            c.find(Locator::Css(r#"#signin button[type="submit"]"#))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        }
    };
    sign_in_with("crc_wrong".into()).await;
    wait_for_text(&c, "#signin-error", "unknown").await;
    screenshot(&c, "signin-refused").await;
    // The token by hand signs in too.
    sign_in_with(s.token.clone()).await;
    wait_for(&c, r#"#viewer[data-team="alpha"]"#).await;
    wait_for(&c, "#runs").await;

    c.close().await.unwrap();
    eprintln!("dashboard screenshots: {}", screenshot_dir().display());
}
