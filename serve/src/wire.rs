//! Request bodies in the shapes vLLM accepts, and the body parser whose errors name the field.
//! Fields this server does not know are ignored, as vLLM ignores them (`user`, a message's
//! `name`); fields that would change the output and are not implemented (penalties,
//! `logit_bias`, `suffix`, `best_of` above `n`) are refused with a 400, never silently dropped.

use std::collections::HashMap;

use crucible_types::sampling::SamplingParams;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Most choices one request may ask for (prompts × `n`).
pub const MAX_CHOICES: usize = 1024;
/// Most completions of one prompt.
pub const MAX_N: u32 = 128;

/// Parses a JSON body; a failure names the JSON path of the field at fault.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(field_error)
}

/// Parses a request body and, from the same object, its sampling fields (kept apart rather than
/// flattened into the request, where serde would lose the name of a bad field).
pub fn parse_with_sampling<T: DeserializeOwned>(body: &[u8]) -> Result<(T, Sampling), ApiError> {
    let value: serde_json::Value = parse(body)?;
    let request = serde_path_to_error::deserialize(&value).map_err(field_error)?;
    let sampling = serde_path_to_error::deserialize(&value).map_err(field_error)?;
    Ok((request, sampling))
}

/// The 400 of a body that does not parse: `param` is the failing field's JSON path (for a
/// missing field, the field itself).
fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let message = e.inner().to_string();
    let path = e.path().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let param = match (path.as_str(), missing) {
        (".", Some(field)) => field.to_string(),
        (_, Some(field)) => format!("{path}.{field}"),
        (".", None) => "body".to_string(),
        _ => path,
    };
    ApiError::invalid(param, message)
}

/// `prompt` of a completion request: text, texts, token ids, or lists of token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
    IdLists(Vec<Vec<u32>>),
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send one last chunk, with empty `choices`, carrying the request's token counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling fields common to both endpoints, parsed from the same body as the request (OpenAI's, plus vLLM's `top_k`, `min_p`,
/// `ignore_eos`, `stop_token_ids`).
#[derive(Debug, Default, Deserialize)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// vLLM's convention: -1 (or 0) disables it.
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    pub stop_token_ids: Option<Vec<u32>>,
    pub ignore_eos: Option<bool>,
    pub n: Option<u32>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub logit_bias: Option<HashMap<String, f32>>,
}

impl Sampling {
    /// The number of completions per prompt, checked.
    pub fn n(&self) -> Result<u32, ApiError> {
        match self.n.unwrap_or(1) {
            n @ 1..=MAX_N => Ok(n),
            n => Err(ApiError::invalid(
                "n",
                format!("must be between 1 and {MAX_N}, got {n}"),
            )),
        }
    }

    /// Whether to stream, refusing `stream_options` on a request that does not.
    pub fn stream(&self) -> Result<bool, ApiError> {
        let stream = self.stream.unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(ApiError::invalid(
                "stream_options",
                "stream_options is only allowed when stream is true",
            ));
        }
        Ok(stream)
    }

    /// Whether the final usage chunk of a stream was asked for.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// The engine's parameters for choice `j` of a request with `max_new_tokens`: a seeded
    /// request's choice j uses seed + j (so each choice differs and each reproduces), an
    /// unseeded one a random seed.
    pub fn params(&self, max_new_tokens: u32, j: u32) -> Result<SamplingParams, ApiError> {
        for (field, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if value.is_some_and(|v| v != 0.0) {
                return Err(ApiError::invalid(
                    field,
                    "penalties are not supported (only 0)",
                ));
            }
        }
        if self.repetition_penalty.is_some_and(|v| v != 1.0) {
            return Err(ApiError::invalid(
                "repetition_penalty",
                "penalties are not supported (only 1)",
            ));
        }
        if self.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
            return Err(ApiError::invalid(
                "logit_bias",
                "logit_bias is not supported",
            ));
        }
        let seed = match self.seed {
            Some(s) => (s as u64).wrapping_add(u64::from(j)),
            None => rand::random(),
        };
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        let params = SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            top_k: self.top_k.filter(|&k| k > 0).map_or(0, |k| k as u32),
            min_p: self.min_p.unwrap_or(0.0),
            seed,
            max_new_tokens,
            stop_token_ids: self.stop_token_ids.clone().unwrap_or_default(),
            stop,
            ignore_eos: self.ignore_eos.unwrap_or(false),
        };
        if let Some(k) = self.top_k
            && k < -1
        {
            return Err(ApiError::invalid(
                "top_k",
                "must be -1 (off), 0 (off) or positive",
            ));
        }
        Ok(params)
    }
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    pub max_tokens: Option<u32>,
    /// Alternatives per token (0–20): also the generated tokens' own log-probabilities.
    pub logprobs: Option<u32>,
    /// Return the prompt before the completion, with its log-probabilities when `logprobs` is set.
    pub echo: Option<bool>,
    pub best_of: Option<u32>,
    pub suffix: Option<String>,
}

/// One chat message; `content` is text or a list of text parts.
#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Option<Content>,
}

/// Who speaks.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// The role as chat templates name it (`developer` is OpenAI's newer `system`).
    pub fn template_name(self) -> &'static str {
        match self {
            Role::System | Role::Developer => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// A part of a message's content: only text parts (this server runs text models).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    /// vLLM's extension: end the rendered prompt with the assistant's header (default true).
    pub add_generation_prompt: Option<bool>,
}

/// `POST /tokenize`: a prompt, or messages rendered with the chat template.
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    pub prompt: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub add_special_tokens: Option<bool>,
    pub add_generation_prompt: Option<bool>,
}

/// `POST /detokenize`.
#[derive(Debug, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Vec<u32>,
}
