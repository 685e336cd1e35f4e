//! A checkpoint's tokenizer (`tokenizer.json` through the `tokenizers` crate) and chat template
//! (`tokenizer_config.json` through minijinja), loaded from the same folder as the weights.

pub mod chat_template;

use std::path::{Path, PathBuf};

pub use chat_template::{ChatMessage, ChatTemplate};

/// Why a tokenizer could not be loaded or used; each names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// `tokenizer.json` is missing or unreadable/corrupt.
    #[error("{}: {message}", path.display())]
    Load { path: PathBuf, message: String },
    /// `tokenizer_config.json` is malformed.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Codec(String),
    /// The chat template failed to compile or render (including `raise_exception`).
    #[error("chat template: {0}")]
    Template(String),
    /// `--chat` was asked of a checkpoint whose tokenizer_config.json has no chat template.
    #[error("{}: no chat_template in tokenizer_config.json or chat_template.jinja", dir.display())]
    NoChatTemplate { dir: PathBuf },
}

/// Text ↔ token ids for one checkpoint, plus its chat template when it has one.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    chat_template: Option<ChatTemplate>,
    eos_token_id: Option<u32>,
    dir: PathBuf,
}

impl Tokenizer {
    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(TokenizerError::Load {
                path,
                message: "file not found".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| TokenizerError::Load {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let config = chat_template::TokenizerConfig::load(dir)?;
        let eos_token_id = config
            .eos_token
            .as_deref()
            .and_then(|t| inner.token_to_id(t));
        Ok(Self {
            chat_template: config.into_template()?,
            inner,
            eos_token_id,
            dir: dir.to_path_buf(),
        })
    }

    /// Token ids of `text`; `add_special_tokens` applies the tokenizer's post-processor (BOS …).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| TokenizerError::Codec(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, without special tokens (what a user should read).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TokenizerError::Codec(e.to_string()))
    }

    /// Text of one id with special tokens kept (`<|im_end|>` stays visible): how an
    /// OpenAI-compatible server labels each token of a log-probability list.
    pub fn token_text(&self, id: u32) -> Result<String, TokenizerError> {
        self.inner
            .decode(&[id], false)
            .map_err(|e| TokenizerError::Codec(e.to_string()))
    }

    /// The checkpoint's chat template, when it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// The id of `tokenizer_config.json`'s `eos_token` (chat models end turns with it).
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token_id
    }

    /// Number of ids, added tokens included (the model's `vocab_size` must cover them).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token string such as `<|im_end|>`.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Renders `messages` with the checkpoint's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| TokenizerError::NoChatTemplate {
                dir: self.dir.clone(),
            })?
            .render(messages, add_generation_prompt)
    }
}
