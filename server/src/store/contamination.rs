//! The leaderboard's contamination flag: word n-gram overlap between a benchmark's problems and the
//! datasets registered as a model's training data (MiMo decontaminated its SFT data at 16-grams).

use serde_json::{Value, json};
use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Length of the word n-grams compared.
pub const NGRAM: usize = 13;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn ngram_hashes(text: &str) -> impl Iterator<Item = u64> {
    let w = words(text);
    let count = w.len().saturating_sub(NGRAM - 1);
    (0..count).map(move |i| {
        let mut h = DefaultHasher::new();
        w[i..i + NGRAM].hash(&mut h);
        h.finish()
    })
}

/// Every string inside a JSON row, concatenated: training rows keep their text in varying fields.
pub fn row_text(row: &Value) -> String {
    match row {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(row_text).collect::<Vec<_>>().join(" "),
        Value::Object(o) => o.values().map(row_text).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// The report stored on the eval: how many problems share an n-gram with the training texts.
pub fn report<'a>(
    problems: impl IntoIterator<Item = &'a str>,
    training: impl IntoIterator<Item = String>,
) -> Value {
    let seen: HashSet<u64> = training
        .into_iter()
        .flat_map(|t| ngram_hashes(&t).collect::<Vec<_>>())
        .collect();
    let (mut total, mut overlapping) = (0usize, 0usize);
    for p in problems {
        total += 1;
        if ngram_hashes(p).any(|h| seen.contains(&h)) {
            overlapping += 1;
        }
    }
    json!({ "ngram": NGRAM, "problems": total, "overlapping": overlapping, "flagged": overlapping > 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_thirteen_word_spans_are_flagged_and_short_ones_are_not() {
        let problem = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.";
        let leaked = format!("Q: {problem} How many?");
        let r = report([problem, "What is 2 + 2?"], [leaked]);
        assert_eq!(
            (
                r["problems"].as_u64(),
                r["overlapping"].as_u64(),
                r["flagged"].as_bool()
            ),
            (Some(2), Some(1), Some(true))
        );
        let clean = report(
            [problem],
            ["Natalia sold clips to 48 of her friends".to_string()],
        );
        assert_eq!(clean["flagged"], false);
    }

    #[test]
    fn row_text_collects_nested_strings() {
        let row = serde_json::json!({ "problem": "a b", "meta": { "hint": ["c", 1] } });
        let t = row_text(&row);
        assert!(t.contains("a b") && t.contains('c'));
    }
}
