//! Short free-form answers compared as text (BBH's `True`, `valid`, `] ) }`): where the answer
//! is found in a completion, and the form two answers are compared in.

use std::sync::LazyLock;

use regex::Regex;

use crate::math::last_boxed;

/// "the answer is X" (last occurrence), up to the end of its sentence or line.
static ANSWER_IS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)answer\s*(?:is|:)\s*(.+?)\s*(?:\.\s|\.$|\n|$)").expect("static regex")
});

/// A short free-form answer: the last `\boxed{}`, else the last "the answer is …", else the
/// last non-empty line.
pub fn extract_short_answer(text: &str) -> Option<String> {
    if let Some(b) = last_boxed(text) {
        return Some(b.to_string());
    }
    if let Some(c) = ANSWER_IS.captures_iter(text).last() {
        return Some(c[1].to_string());
    }
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

/// Lower case, `\text{…}` and markdown emphasis removed, spaces collapsed, trailing period off.
pub fn normalize_text(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("\\text{")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(s);
    let s = s.trim_matches(|c: char| c == '*' || c == '`' || c.is_whitespace());
    let s = s.strip_suffix('.').unwrap_or(s);
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_found_boxed_stated_or_on_the_last_line() {
        assert_eq!(
            extract_short_answer("so \\boxed{valid}").as_deref(),
            Some("valid")
        );
        assert_eq!(
            extract_short_answer("The answer is ] ) }. Done").as_deref(),
            Some("] ) }")
        );
        assert_eq!(
            extract_short_answer("a\n\n False \n").as_deref(),
            Some("False")
        );
        assert_eq!(extract_short_answer("  \n"), None);
        assert_eq!(normalize_text("\\text{Yes}"), "yes");
        assert_eq!(normalize_text(" **Valid** "), "valid");
        assert_eq!(normalize_text("Valid."), "valid");
        assert_eq!(normalize_text("apple   Banana"), "apple banana");
    }
}
