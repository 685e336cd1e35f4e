//! A generator backed by an OpenAI-compatible `/chat/completions` endpoint (vLLM, SGLang, …).
//!
//! Why one request per sample: sample j is sent with seed `seed + j` (as the local engine does),
//! so a rerun or a retried chunk asks for the same samples, and the endpoint reports each
//! sample's own token count, which an `n > 1` request only gives as a total.
//! Requests run `concurrency` at a time on threads (the blocking client must not be used inside
//! an async runtime: call it from a plain thread or `spawn_blocking`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crucible_types::sampling::SamplingParams;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use super::EvalError;
use super::generator::{Completion, Generator, sample_params};

/// Where the endpoint is and how to talk to it.
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// Up to the version, e.g. `http://gpu-box:8000/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// The served model name.
    pub model: String,
    /// Sent as a bearer token when present.
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Further attempts after a transport error, a 429 or a 5xx.
    pub max_retries: u32,
    /// Wait before the first retry; doubles with each further one.
    pub retry_backoff: Duration,
    /// Per-request limit (long reasoning completions take minutes).
    pub timeout: Duration,
}

impl OpenAiConfig {
    /// Defaults for a served model: 8 requests in flight, 4 retries from 1 s, 20 min per request.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            concurrency: 8,
            max_retries: 4,
            retry_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(1200),
        }
    }
}

/// The client.
pub struct OpenAiGenerator {
    config: OpenAiConfig,
    url: String,
    client: Client,
}

impl OpenAiGenerator {
    /// A client for `config`'s endpoint.
    pub fn new(config: OpenAiConfig) -> Result<Self, EvalError> {
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let client = Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| EvalError::Endpoint {
                url: url.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            config,
            url,
            client,
        })
    }

    fn body(&self, prompt: &str, params: &SamplingParams) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "n": 1,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": params.seed,
        });
        // Extensions vLLM and SGLang accept; sent only when used, since OpenAI itself refuses them.
        if params.top_k > 0 {
            body["top_k"] = json!(params.top_k);
        }
        if params.min_p > 0.0 {
            body["min_p"] = json!(params.min_p);
        }
        if !params.stop.is_empty() {
            body["stop"] = json!(params.stop);
        }
        body
    }

    /// One completion, retrying transport errors, 429 and 5xx with exponential backoff.
    fn complete(&self, prompt: &str, params: &SamplingParams) -> Result<Completion, EvalError> {
        let body = self.body(prompt, params);
        let mut attempt = 0;
        loop {
            let mut request = self.client.post(&self.url).json(&body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            let failure = match request.send() {
                Ok(resp) if resp.status().is_success() => {
                    let reply: Value = resp.json().map_err(|e| self.error(e.to_string()))?;
                    return self.parse(&reply);
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text: String = resp.text().unwrap_or_default().chars().take(500).collect();
                    let message = format!("HTTP {status}: {text}");
                    if !retryable(status) {
                        return Err(self.error(message));
                    }
                    message
                }
                Err(e) => e.to_string(),
            };
            if attempt >= self.config.max_retries {
                return Err(self.error(format!(
                    "{failure} (gave up after {} attempts)",
                    attempt + 1
                )));
            }
            let wait = self.config.retry_backoff * 2u32.saturating_pow(attempt);
            tracing::warn!(url = %self.url, attempt, ?wait, "{failure}; retrying");
            thread::sleep(wait);
            attempt += 1;
        }
    }

    fn parse(&self, reply: &Value) -> Result<Completion, EvalError> {
        let choice = reply
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| self.error("reply has no `choices[0]`"))?;
        let text = match choice.pointer("/message/content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) => String::new(),
            _ => return Err(self.error("reply has no `choices[0].message.content`")),
        };
        let tokens = reply
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX));
        Ok(Completion {
            text,
            tokens,
            truncated: choice.get("finish_reason").and_then(Value::as_str) == Some("length"),
        })
    }

    fn error(&self, message: impl Into<String>) -> EvalError {
        EvalError::Endpoint {
            url: self.url.clone(),
            message: message.into(),
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

impl Generator for OpenAiGenerator {
    fn generate(
        &mut self,
        prompts: &[String],
        sampling: &SamplingParams,
        n: u32,
    ) -> Result<Vec<Vec<Completion>>, EvalError> {
        let jobs: Vec<(usize, u32)> = (0..prompts.len())
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .collect();
        let slots: Vec<Mutex<Option<Completion>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<EvalError>> = Mutex::new(None);
        let workers = self.config.concurrency.clamp(1, jobs.len().max(1));
        let this = &*self;
        thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(i, j)) = jobs.get(at) else { break };
                        match this.complete(&prompts[i], &sample_params(sampling, j)) {
                            Ok(c) => *slots[at].lock().unwrap_or_else(|e| e.into_inner()) = Some(c),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                first_error
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        let mut flat = slots
            .into_iter()
            .map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::with_capacity(prompts.len());
        for _ in prompts {
            let row: Option<Vec<Completion>> = flat.by_ref().take(n as usize).collect();
            out.push(row.ok_or_else(|| self.error("a request produced no completion"))?);
        }
        Ok(out)
    }
}
