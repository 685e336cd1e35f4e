//! `crucible serve-model` as other tools see it: the real `openai` Python client (chat and
//! completions, streamed and not, `n` > 1, stop strings, seeds, log-probabilities, a seeded
//! request alone and among 64), bad input refused with a 400 naming the field while the server
//! keeps serving, and `/metrics` under vLLM's names (read by Prometheus's parser).

mod common;

use common::ServedModel;
use crucible_types::testing::{optional_input, parse_openmetrics, prometheus_python, sample_value};
use serde_json::{Value, json};

const SMALL_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/crucible-mimo-small");
const MODEL_NAME: &str = "crucible-mimo-small";
const KEY: &str = "test-key";

fn serve() -> ServedModel {
    ServedModel::start(SMALL_MODEL, &["--api-key", KEY])
}

#[test]
fn the_openai_client_works_against_the_server() {
    let Some(python) = optional_input(
        "CRUCIBLE_OPENAI_PYTHON",
        "CRUCIBLE_REQUIRE_OPENAI",
        "the_openai_client_works_against_the_server",
    ) else {
        return;
    };
    let served = serve();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai/client_checks.py");
    let out = std::process::Command::new(python)
        .args([script, &format!("{}/v1", served.base), KEY, MODEL_NAME])
        .output()
        .expect("cannot run the openai client checks");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// The server's `/metrics` page (it needs no token).
async fn metrics_page(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(url)
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_the_server_keeps_serving() {
    let served = serve();
    let http = reqwest::Client::new();
    let completions = format!("{}/v1/completions", served.base);
    let chat = format!("{}/v1/chat/completions", served.base);
    let hi = json!([{"role": "user", "content": "hi"}]);
    // A long request keeps decoding while the bad ones are refused.
    let long = tokio::spawn({
        let (http, url) = (http.clone(), completions.clone());
        async move {
            post(&http, &url, &json!({"model": MODEL_NAME, "prompt": "Q: 1 + 1 = ?\nA:", "max_tokens": 400, "ignore_eos": true, "temperature": 0})).await
        }
    });
    let cases = [
        (
            &completions,
            json!({"model": "gpt-4", "prompt": "x"}),
            "model",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": "x", "n": 1_000_000}),
            "n",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": "x", "n": "two"}),
            "n",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": "x", "max_tokens": 100_000}),
            "max_tokens",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": [1, 2, 1_000_000]}),
            "prompt",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": [[5, 6], [7, 99_999]]}),
            "prompt",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": []}),
            "prompt",
        ),
        (&completions, json!({"model": MODEL_NAME}), "prompt"),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": "x", "stream_options": {"include_usage": true}}),
            "stream_options",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": "x", "temperature": 99}),
            "temperature",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": "x", "logprobs": 50}),
            "logprobs",
        ),
        (
            &completions,
            json!({"model": MODEL_NAME, "prompt": "x", "presence_penalty": 0.5}),
            "presence_penalty",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": []}),
            "messages",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": "hi"}),
            "messages",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": [{"role": "robot", "content": "hi"}]}),
            "messages[0].role",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": [{"content": "hi"}]}),
            "messages[0].role",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            "messages[0].content",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": hi, "max_completion_tokens": 100_000}),
            "max_completion_tokens",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": hi, "top_logprobs": 2}),
            "top_logprobs",
        ),
        (
            &chat,
            json!({"model": MODEL_NAME, "messages": hi, "stream_options": {}}),
            "stream_options",
        ),
    ];
    for (url, body, param) in cases {
        let (status, reply) = post(&http, url, &body).await;
        assert_eq!(status, 400, "{body} → {reply}");
        assert_eq!(reply["error"]["param"], param, "{body} → {reply}");
        assert_eq!(reply["error"]["code"], 400, "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
    }
    let raw = http
        .post(&completions)
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let unauthenticated = http
        .get(format!("{}/v1/models", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let wrong = http
        .get(format!("{}/v1/models", served.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"]["type"],
        "authentication_error"
    );

    let (status, reply) = long.await.unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["usage"]["completion_tokens"], 400, "{reply}");
    let (status, reply) = post(
        &http,
        &chat,
        &json!({"model": MODEL_NAME, "messages": hi, "max_tokens": 4}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test]
async fn metrics_use_vllm_names_and_count_what_was_served() {
    let Some(python) = prometheus_python("metrics_use_vllm_names_and_count_what_was_served") else {
        return;
    };
    let served = serve();
    let http = reqwest::Client::new();
    let mut prompt_tokens = 0;
    let mut completion_tokens = 0;
    for max_tokens in [3, 5, 8] {
        let (status, reply) = post(
            &http,
            &format!("{}/v1/completions", served.base),
            &json!({"model": MODEL_NAME, "prompt": "Q: 2 + 2 = ?\nA:", "max_tokens": max_tokens, "n": 2, "ignore_eos": true}),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        prompt_tokens += reply["usage"]["prompt_tokens"].as_u64().unwrap();
        completion_tokens += reply["usage"]["completion_tokens"].as_u64().unwrap();
    }
    assert_eq!(completion_tokens, 2 * (3 + 5 + 8));
    // /metrics needs no token (Prometheus scrapes it). The engine lowers its gauges right after
    // the step that finished the last replies, so a scrape at once may still see them running.
    let mut page = String::new();
    for _ in 0..50 {
        page = metrics_page(&http, &served.base).await;
        if page.contains("vllm:num_requests_running{model_name=\"crucible-mimo-small\"} 0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let samples = parse_openmetrics(&python, &page);
    let model = [("model_name", MODEL_NAME)];
    let value = |name: &str| {
        sample_value(&samples, name, &model).unwrap_or_else(|| panic!("no {name}:\n{page}"))
    };
    assert_eq!(
        value("vllm:generation_tokens_total"),
        completion_tokens as f64
    );
    assert_eq!(value("vllm:prompt_tokens_total"), prompt_tokens as f64);
    assert_eq!(value("vllm:num_requests_running"), 0.0);
    assert_eq!(value("vllm:num_requests_waiting"), 0.0);
    assert_eq!(value("vllm:time_to_first_token_seconds_count"), 6.0);
    assert_eq!(value("vllm:e2e_request_latency_seconds_count"), 6.0);
    assert_eq!(
        value("vllm:inter_token_latency_seconds_count"),
        (completion_tokens - 6) as f64
    );
    let finished = sample_value(
        &samples,
        "vllm:request_success_total",
        &[("model_name", MODEL_NAME), ("finished_reason", "length")],
    );
    assert_eq!(finished, Some(6.0), "{page}");
    // Drafting is off by default: its counters are there, at zero.
    assert_eq!(value("vllm:spec_decode_num_draft_tokens_total"), 0.0);
}

#[tokio::test]
async fn drafting_counts_its_drafts_and_leaves_greedy_output_unchanged() {
    let Some(python) =
        prometheus_python("drafting_counts_its_drafts_and_leaves_greedy_output_unchanged")
    else {
        return;
    };
    let plain = serve();
    let drafting = ServedModel::start(SMALL_MODEL, &["--api-key", KEY, "--speculative", "mtp:1"]);
    let http = reqwest::Client::new();
    let body = json!({"model": MODEL_NAME, "messages": [{"role": "user", "content": "Start with 7. add 5. What is the result?"}], "max_tokens": 40, "temperature": 0});
    let (_, a) = post(&http, &format!("{}/v1/chat/completions", plain.base), &body).await;
    let (_, b) = post(
        &http,
        &format!("{}/v1/chat/completions", drafting.base),
        &body,
    )
    .await;
    assert_eq!(
        a["choices"][0]["message"], b["choices"][0]["message"],
        "{a} vs {b}"
    );
    let page = metrics_page(&http, &drafting.base).await;
    let samples = parse_openmetrics(&python, &page);
    let model = [("model_name", MODEL_NAME)];
    let proposed =
        sample_value(&samples, "vllm:spec_decode_num_draft_tokens_total", &model).unwrap();
    let accepted = sample_value(
        &samples,
        "vllm:spec_decode_num_accepted_tokens_total",
        &model,
    )
    .unwrap();
    assert!(
        proposed > 0.0 && accepted > 0.0 && accepted <= proposed,
        "{page}"
    );
}
