//! Finding the final answer inside a model's completion.
//!
//! Why configurable: R1/MiMo-style prompts ask for `\boxed{}`, Minerva-style prompts for "The final
//! answer is …", GSM8K references end in `#### …`; an eval chooses which of these count, in order.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// One way of locating the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The last `\boxed{…}`, `\fbox{…}` or `\framebox{…}` (nested braces allowed).
    Boxed,
    /// The text after the last "answer is" / "Answer:".
    AnswerPhrase,
    /// The text after the last `####` (GSM8K references).
    Gsm8kHashes,
    /// The last number in the text (off by default: it rewards rambling).
    LastNumber,
    /// The whole text is the answer (for bare answers typed by a person).
    WholeText,
}

/// Which strategies to try, first hit wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractConfig {
    pub strategies: Vec<Strategy>,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            strategies: vec![
                Strategy::Boxed,
                Strategy::AnswerPhrase,
                Strategy::Gsm8kHashes,
            ],
        }
    }
}

static ANSWER_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:final answer|the answer|answer)\s*(?:is|:)\s*:?")
        .unwrap_or_else(|e| panic!("{e}"))
});
static GSM8K: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"####\s*([^\n]+)").unwrap_or_else(|e| panic!("{e}")));
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-?\d[\d,]*(?:\.\d+)?").unwrap_or_else(|e| panic!("{e}")));

/// Returns the balanced-brace group starting at `open` (which must be `{`), without the braces.
fn braced_group(s: &str, open: usize) -> Option<&str> {
    let bytes = s.as_bytes();
    if bytes.get(open) != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[open + 1..i]);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// One `\boxed{…}` in a completion: where it starts and ends, and what it holds.
struct Boxed<'a> {
    start: usize,
    end: usize,
    content: &'a str,
}

/// The content of a box opened at `open` (a `{`) whose closing brace is missing, when the math
/// it sits in visibly ends (`\boxed{5$.`, a line break with more text after it, or a full stop
/// that ends the text): the writer forgot the brace. A box cut off by the end of the text is not
/// read (the answer may be incomplete).
fn unclosed_box(text: &str, open: usize) -> Option<(&str, usize)> {
    let rest = &text[open + 1..];
    let Some(stop) = rest.find(['$', '\n']) else {
        // The text ends, but with a full stop: the sentence was finished, not cut off.
        let content = rest.trim_end().strip_suffix('.')?.trim();
        return (!content.is_empty()).then_some((content, text.len()));
    };
    let content = rest[..stop].trim();
    let more_after = !rest[stop + 1..].trim().is_empty() || rest.as_bytes()[stop] == b'$';
    (!content.is_empty() && more_after).then_some((content, open + 1 + stop))
}

/// Every outermost box (`\boxed`, `\fbox`, `\framebox`, `\boxed 5`) in order of appearance.
fn boxes(text: &str) -> Vec<Boxed<'_>> {
    let mut starts: Vec<(usize, usize)> = ["\\boxed", "\\fbox", "\\framebox"]
        .iter()
        .flat_map(|cmd| text.match_indices(cmd).map(move |(i, m)| (i, i + m.len())))
        .collect();
    starts.sort_unstable();
    let mut out: Vec<Boxed<'_>> = Vec::new();
    for (start, after) in starts {
        if out.last().is_some_and(|b| start < b.end) {
            continue;
        }
        let rest = &text[after..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let mut skip = rest.len() - rest.trim_start().len();
        if text[after + skip..].starts_with('[')
            && let Some(close) = text[after + skip..].find(']')
        {
            skip += close + 1;
        }
        let open = after + skip;
        let found = if text[open..].starts_with('{') {
            braced_group(text, open)
                .map(|inner| (inner, open + inner.len() + 2))
                .or_else(|| unclosed_box(text, open))
        } else if skip > 0 {
            text[open..]
                .split(|c: char| c.is_whitespace() || c == '$')
                .next()
                .filter(|t| !t.is_empty())
                .map(|t| (t, open + t.len()))
        } else {
            None
        };
        if let Some((content, end)) = found {
            out.push(Boxed {
                start,
                end,
                content,
            });
        }
    }
    out
}

/// The content of the last box (a box inside it wins: `\boxed{\boxed{3}}` is `3`).
pub fn last_boxed(text: &str) -> Option<&str> {
    let inner = boxes(text).pop()?.content;
    Some(last_boxed(inner).unwrap_or(inner))
}

/// The boxes of the paragraph that holds the last box, joined as one list (`x = \boxed{2}` or
/// `x = \boxed{3}` answers `2, 3`); `None` unless that paragraph has two or more boxes.
pub fn final_boxes_joined(text: &str) -> Option<String> {
    let all = boxes(text);
    let last = all.last()?;
    let paragraph = text[..last.start].rfind("\n\n").unwrap_or(0);
    let finals: Vec<&str> = all
        .iter()
        .filter(|b| b.start >= paragraph)
        .map(|b| b.content.trim())
        .filter(|c| !c.is_empty())
        .collect();
    (finals.len() > 1).then(|| finals.join(", "))
}

/// The text before the first `$` that is not written `\$` (the end of inline math).
fn until_unescaped_dollar(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'$' => return &s[..i],
            _ => i += 1,
        }
    }
    s
}

/// Cleans a phrase-style answer: first line, inline math, trailing period and boilerplate.
fn clean_phrase(rest: &str) -> Option<String> {
    let rest = rest.trim_start().trim_start_matches('*').trim_start();
    let candidate = if let Some(after) = rest.strip_prefix('$') {
        let inner = after.strip_prefix('$').unwrap_or(after);
        until_unescaped_dollar(inner)
    } else if let Some(boxed) = last_boxed(rest.lines().next()?) {
        boxed
    } else {
        rest.lines().next()?
    };
    let candidate = candidate.split(". I hope it is correct").next()?;
    let candidate = candidate.trim().trim_end_matches(['.', '*']).trim();
    (!candidate.is_empty()).then(|| candidate.to_string())
}

/// Extracts the final answer of `text` using the configured strategies in order.
pub fn extract_answer(text: &str, cfg: &ExtractConfig) -> Option<String> {
    cfg.strategies.iter().find_map(|s| match s {
        Strategy::Boxed => last_boxed(text)
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty()),
        Strategy::AnswerPhrase => {
            let m = ANSWER_PHRASE.find_iter(text).last()?;
            clean_phrase(&text[m.end()..])
        }
        Strategy::Gsm8kHashes => GSM8K
            .captures_iter(text)
            .last()
            .map(|c| c[1].trim().to_string()),
        Strategy::LastNumber => NUMBER
            .find_iter(text)
            .last()
            .map(|m| m.as_str().to_string()),
        Strategy::WholeText => Some(text.trim().to_string()).filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str) -> Option<String> {
        extract_answer(text, &ExtractConfig::default())
    }

    #[test]
    fn boxed_with_nested_braces_last_wins() {
        assert_eq!(
            ex(r"first \boxed{1} then \boxed{\frac{a}{b^{2}}}."),
            Some(r"\frac{a}{b^{2}}".into())
        );
        assert_eq!(ex(r"so $\fbox{42}$"), Some("42".into()));
        assert_eq!(ex(r"\framebox{204} minutes"), Some("204".into()));
        assert_eq!(ex(r"\boxed 7 done"), Some("7".into()));
        assert_eq!(ex(r"\boxed{\{1, 2\}}"), Some(r"\{1, 2\}".into()));
        // A box cut off by the end of the text falls back to the previous complete one…
        assert_eq!(ex(r"\boxed{3} and then \boxed{4"), Some("3".into()));
        // …but a box whose brace was forgotten before the math closes is read.
        assert_eq!(ex("so $\\boxed{4$.\nDone."), Some("4".into()));
        assert_eq!(ex(r"so \boxed{\frac{3}{5}."), Some(r"\frac{3}{5}".into()));
        assert_eq!(ex(r"\boxed{\boxed{3}}"), Some("3".into()));
        assert_eq!(
            final_boxes_joined("x = \\boxed{2} or x = \\boxed{3}"),
            Some("2, 3".into())
        );
        assert_eq!(
            final_boxes_joined("guess \\boxed{1}\n\nso \\boxed{2}"),
            None,
            "only the final paragraph counts"
        );
        assert_eq!(ex(r"\boxed{}"), None);
    }

    #[test]
    fn phrase_and_gsm8k_fallbacks() {
        assert_eq!(ex("so the answer is 12."), Some("12".into()));
        assert_eq!(
            ex("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct."),
            Some("\\frac{1}{2}".into())
        );
        assert_eq!(ex("**Answer:** 5\nmore text"), Some("5".into()));
        assert_eq!(ex("The answer is $\\$18.90$."), Some("\\$18.90".into()));
        assert_eq!(ex("She earns 18 dollars.\n#### 18"), Some("18".into()));
        assert_eq!(ex("no answer here 3 4"), None);
        let last = ExtractConfig {
            strategies: vec![Strategy::LastNumber],
        };
        assert_eq!(
            extract_answer("3 then 1,234.5 ok", &last),
            Some("1,234.5".into())
        );
        let whole = ExtractConfig {
            strategies: vec![Strategy::Boxed, Strategy::WholeText],
        };
        assert_eq!(extract_answer(" 0.5 ", &whole), Some("0.5".into()));
        let boxed_only = ExtractConfig {
            strategies: vec![Strategy::Boxed],
        };
        assert_eq!(extract_answer("The answer is 3", &boxed_only), None);
    }
}
