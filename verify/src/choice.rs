//! Extracting the chosen option letter of a multiple-choice answer (GPQA, MMLU, ARC …).
//!
//! Why ordered rules: a completion mentions many letters ("option A is wrong because…"); only a
//! final, explicit choice counts. Rules go from the most explicit (a boxed letter, "the answer is
//! (C)") to the least (a reply that is just a letter), and within a rule the last match wins.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::math::last_boxed;

/// The verdict on one multiple-choice completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceVerdict {
    pub correct: bool,
    pub extracted: Option<char>,
}

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| panic!("static regex {p}: {e}"))
}

/// "answer is (C)", "Answer: C", "correct option is **C**", "I choose C", "答案是 C".
static PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:answer|option|choice)\s*(?:is|:|would be|should be)?\s*(?:option|choice)?\s*[:\-]?[\s\*\(\[\{]*(?-i:([A-Z]))\s*[\)\]\}\*]*(?:[\s.,:;!]|$)|(?i:I (?:choose|pick|select))\s*[\(\[]?(?-i:([A-Z]))\b|答案[是为：:]\s*[\(（]?([A-Z])",
    )
});
/// A line that is only a letter, or a letter with punctuation and then text:
/// "C", "(C)", "C.", "C) 42 metres", "**C**" — but not "A cat sat".
static LONE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*[\*\(\[]*([A-Z])[\*\]]*(?:[.:)]\s.*|[.:)]?\**\s*)$"));

fn letter_in(label: &str, labels: &[char]) -> Option<char> {
    let t = label.trim();
    let t = t
        .strip_prefix("\\text{")
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    let t = t.trim_matches(|c: char| matches!(c, '(' | ')' | ' ' | '.' | '*'));
    let mut chars = t.chars();
    let c = chars.next()?;
    (chars.next().is_none() && labels.contains(&c)).then_some(c)
}

/// The chosen letter among `labels`, or `None` when the completion makes no clear choice.
pub fn extract_choice(text: &str, labels: &[char]) -> Option<char> {
    if let Some(c) = last_boxed(text).and_then(|b| letter_in(b, labels)) {
        return Some(c);
    }
    let phrase = PHRASE
        .captures_iter(text)
        .filter_map(|c| {
            c.iter()
                .skip(1)
                .flatten()
                .next()
                .and_then(|m| m.as_str().chars().next())
        })
        .filter(|c| labels.contains(c))
        .last();
    if phrase.is_some() {
        return phrase;
    }
    // A short reply, or the last line of a long one, that is just a letter.
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = if lines.len() <= 3 {
        &lines[..]
    } else {
        &lines[lines.len() - 1..]
    };
    tail.iter()
        .filter_map(|l| {
            LONE.captures(l)
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().chars().next())
        })
        .rfind(|c| labels.contains(c))
}

/// Extracts the choice and compares it with the gold letter.
pub fn verify_choice(gold: char, text: &str, labels: &[char]) -> ChoiceVerdict {
    let extracted = extract_choice(text, labels);
    ChoiceVerdict {
        correct: extracted == Some(gold),
        extracted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABCD: [char; 4] = ['A', 'B', 'C', 'D'];

    #[test]
    fn explicit_forms() {
        let cases = [
            ("Therefore, the answer is (C).", Some('C')),
            ("The correct answer is B", Some('B')),
            ("Answer: D", Some('D')),
            ("**Answer:** (A)", Some('A')),
            ("so the final answer is $\\boxed{B}$", Some('B')),
            ("\\boxed{\\text{C}}", Some('C')),
            ("\\boxed{(D)}", Some('D')),
            (
                "Option A is wrong. Option B is too small. The answer is option C.",
                Some('C'),
            ),
            ("I choose B because it is larger.", Some('B')),
            ("答案是 C", Some('C')),
        ];
        for (text, want) in cases {
            assert_eq!(extract_choice(text, &ABCD), want, "{text}");
        }
    }

    #[test]
    fn lone_letters_and_refusals() {
        assert_eq!(extract_choice("C", &ABCD), Some('C'));
        assert_eq!(extract_choice("(B)", &ABCD), Some('B'));
        assert_eq!(extract_choice("  D.  ", &ABCD), Some('D'));
        assert_eq!(extract_choice("B) 42 metres", &ABCD), Some('B'));
        // A letter outside the labels, or no choice at all.
        assert_eq!(extract_choice("The answer is (E).", &ABCD), None);
        assert_eq!(
            extract_choice("The answer is (E).", &['A', 'B', 'C', 'D', 'E']),
            Some('E')
        );
        assert_eq!(
            extract_choice("I am not sure which one is right.", &ABCD),
            None
        );
        assert_eq!(
            extract_choice(
                "A cat sat on the mat and then it left the room quietly.",
                &ABCD
            ),
            None
        );
        assert_eq!(extract_choice("", &ABCD), None);
    }

    #[test]
    fn verdict_compares_with_gold() {
        assert!(verify_choice('C', "The answer is (C)", &ABCD).correct);
        assert!(!verify_choice('C', "The answer is (A)", &ABCD).correct);
    }
}
