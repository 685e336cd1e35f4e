//! Hugging Face chat templates rendered with minijinja.
//!
//! HF renders templates with Jinja2 configured with `trim_blocks` and `lstrip_blocks`, a
//! `raise_exception` function, a `tojson` that does not escape HTML or non-ASCII characters, and
//! Python string/dict methods (`.strip()`, `.startswith()`, `.items()` …). The same environment is
//! recreated here so a checkpoint's template renders byte-for-byte as in `transformers`.

use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind, Value, context};
use serde::{Deserialize, Serialize};

use super::TokenizerError;

const TEMPLATE_NAME: &str = "chat";

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template and the special-token strings templates refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl ChatTemplate {
    /// Compiles `source` in the HF dialect.
    pub fn new(
        source: String,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<Self, TokenizerError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| TokenizerError::Template(e.to_string()))?;
        Ok(Self {
            env,
            source,
            bos_token,
            eos_token,
        })
    }

    /// The Jinja source, for clients that render prompts themselves (lm-eval's remote tokenizer).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `bos_token` string templates see.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The prompt text for `messages`; `add_generation_prompt` appends the assistant-turn header.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TokenizerError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|e| TokenizerError::Template(describe(&e)))
    }
}

/// A template error with its cause chain (minijinja nests the `raise_exception` message).
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// HF's `raise_exception(message)`: lets a template refuse a conversation it cannot render.
fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// HF's `tojson`: Python `json.dumps(ensure_ascii=False)` output — keys in insertion order,
/// `", "`/`": "` separators, no HTML escaping — with an optional `indent`.
fn tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let written = match indent {
        None => value.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PythonSeparators,
        )),
        Some(n) => {
            let pad = vec![b' '; n];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
            value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, fmt))
        }
    };
    written.map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(Value::from_safe_string(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// The separators of Python's `json.dumps` without `indent`.
struct PythonSeparators;

impl serde_json::ser::Formatter for PythonSeparators {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// A special token in `tokenizer_config.json`: a plain string or an AddedToken object.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Added { content: String },
}

/// `chat_template` is a string, or a list of named templates of which `default` is used.
#[derive(Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// The parts of `tokenizer_config.json` generation needs.
pub(crate) struct TokenizerConfig {
    pub(crate) eos_token: Option<String>,
    bos_token: Option<String>,
    template: Option<String>,
}

impl TokenizerConfig {
    /// Reads `tokenizer_config.json` (optional) and `chat_template.jinja` (optional, preferred,
    /// as newer `transformers` versions write the template there).
    pub(crate) fn load(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer_config.json");
        let bad = |message: String| TokenizerError::Config {
            path: path.clone(),
            message,
        };
        let mut config = Self {
            eos_token: None,
            bos_token: None,
            template: None,
        };
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            let json: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            let token = |key: &str| -> Result<Option<String>, TokenizerError> {
                match json.get(key) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(v) => match serde_json::from_value::<SpecialToken>(v.clone()) {
                        Ok(SpecialToken::Text(t) | SpecialToken::Added { content: t }) => {
                            Ok(Some(t))
                        }
                        Err(e) => Err(bad(format!("key `{key}`: {e}"))),
                    },
                }
            };
            config.eos_token = token("eos_token")?;
            config.bos_token = token("bos_token")?;
            config.template = match json.get("chat_template") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => match serde_json::from_value::<TemplateField>(v.clone())
                    .map_err(|e| bad(format!("key `chat_template`: {e}")))?
                {
                    TemplateField::One(t) => Some(t),
                    TemplateField::Named(list) => list
                        .into_iter()
                        .find(|t| t.name == "default")
                        .map(|t| t.template),
                },
            };
        }
        let jinja: PathBuf = dir.join("chat_template.jinja");
        if jinja.exists() {
            config.template =
                Some(
                    std::fs::read_to_string(&jinja).map_err(|e| TokenizerError::Config {
                        path: jinja.clone(),
                        message: e.to_string(),
                    })?,
                );
        }
        Ok(config)
    }

    /// The compiled template, if the checkpoint has one.
    pub(crate) fn into_template(self) -> Result<Option<ChatTemplate>, TokenizerError> {
        self.template
            .map(|t| ChatTemplate::new(t, self.bos_token, self.eos_token))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(
        source: &str,
        messages: &[ChatMessage],
        add_prompt: bool,
    ) -> Result<String, TokenizerError> {
        ChatTemplate::new(source.into(), Some("<s>".into()), Some("</s>".into()))?
            .render(messages, add_prompt)
    }

    #[test]
    fn hf_dialect_features() {
        let source = "{{ bos_token }}{% for m in messages %}\n{{ m.role|upper }}:{{ m.content.strip() }}{% if m.content.strip().startswith('x') %}!{% endif %}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}{{ messages[0]|tojson }}";
        let msgs = [ChatMessage::user("  x<b>é  ")];
        let out = render(source, &msgs, true).unwrap();
        assert_eq!(
            out,
            "<s>USER:x<b>é!A:{\"role\": \"user\", \"content\": \"  x<b>é  \"}"
        );
        let out = render(source, &msgs, false).unwrap();
        assert!(!out.contains("A:"));
    }

    #[test]
    fn raise_exception_reports_the_templates_message() {
        let source = "{% if messages|length == 0 %}{{ raise_exception('need at least one message') }}{% endif %}";
        let err = render(source, &[], false).unwrap_err().to_string();
        assert!(err.contains("need at least one message"), "{err}");
    }
}
