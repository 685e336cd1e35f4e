//! Math answer verification: extract → normalise → parse → compare.
//!
//! Why one entry point: the eval harness and the RL trainer must score the same completion the same
//! way; both call [`verify`]. It never panics and its cost is bounded by the caps in each stage.
//!
//! Equivalence is exact wherever it can be: rationals, radicals and complex numbers in exact
//! arithmetic, decimals as the rationals they spell, mixed numbers, repeating decimals and number
//! words as numbers, intervals and inequalities as sets, equations up to a constant factor. The
//! only tolerance for approximations is for a gold answer that is itself a decimal: an answer
//! written more precisely (two or more further decimals, or an exact irrational value) is right
//! when it lies within half a unit of the gold's last digit (see [`equiv`] for every rule).

pub mod answer;
pub mod complex;
pub mod corpus;
pub mod equiv;
pub mod exact;
pub mod expr;
pub mod extract;
pub mod normalize;
pub mod numbers;
pub mod parse;
pub mod relations;
pub mod shape;

use serde::{Deserialize, Serialize};

use answer::{Answer, ShapeOptions};
pub use equiv::Tolerance;
pub use extract::{ExtractConfig, Strategy, extract_answer, final_boxes_joined, last_boxed};
pub use normalize::normalize;
pub use parse::ParseError;

/// Everything that changes a math verdict.
#[derive(Clone, Debug, Default)]
pub struct MathConfig {
    pub extract: ExtractConfig,
    pub tolerance: Tolerance,
    /// Treat bare comma lists (`1, 2`) as ordered.
    pub ordered_lists: bool,
}

/// The verdict on one completion, with what was compared (for people debugging a verdict).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MathVerdict {
    pub correct: bool,
    /// The answer found in the completion, as written.
    pub extracted: Option<String>,
    pub gold_normalized: String,
    pub answer_normalized: Option<String>,
    /// Why the answer was compared as text and lost: it is not math the parser reads while the
    /// gold is (an unknown command, an unclosed group …). `None` when correct or parsed.
    pub unparsed: Option<String>,
}

/// The gold answer as an answer string: a reference solution's boxed answer if it has one.
fn gold_answer(gold: &str) -> &str {
    last_boxed(gold).unwrap_or(gold)
}

/// True when the two answer strings (already extracted) are equivalent.
pub fn answers_equivalent(gold: &str, answer: &str, cfg: &MathConfig) -> bool {
    compare_normalized(&normalize(gold_answer(gold)), &normalize(answer), cfg)
}

fn shape_options(cfg: &MathConfig) -> ShapeOptions {
    ShapeOptions {
        ordered_lists: cfg.ordered_lists,
    }
}

fn compare_normalized(gold: &str, answer: &str, cfg: &MathConfig) -> bool {
    if gold.is_empty() || answer.is_empty() {
        return false;
    }
    if gold == answer || equiv::canonical_text(gold) == equiv::canonical_text(answer) {
        return true;
    }
    let opts = shape_options(cfg);
    equiv::answers_equal(
        &Answer::parse(gold, opts),
        &Answer::parse(answer, opts),
        &cfg.tolerance,
    )
}

/// Why a wrong answer could not be read as math when the gold can.
fn unparsed_reason(gold: &str, answer: &str, cfg: &MathConfig) -> Option<String> {
    let opts = shape_options(cfg);
    let text = |s: &str| matches!(Answer::parse(s, opts), Answer::Text(_));
    if !text(answer) || text(gold) {
        return None;
    }
    parse::try_parse_expr(answer).err().map(|e| e.to_string())
}

/// Verifies a completion against a gold answer. When the last box is wrong and the final
/// paragraph boxes several values (`x = \boxed{2}` or `x = \boxed{3}`), they are read together.
pub fn verify(gold: &str, completion: &str, cfg: &MathConfig) -> MathVerdict {
    let gold_normalized = normalize(gold_answer(gold));
    let mut extracted = extract_answer(completion, &cfg.extract);
    let mut answer_normalized = extracted.as_deref().map(normalize);
    let mut correct = answer_normalized
        .as_deref()
        .is_some_and(|a| compare_normalized(&gold_normalized, a, cfg));
    if !correct
        && cfg.extract.strategies.first() == Some(&Strategy::Boxed)
        && let Some(joined) = final_boxes_joined(completion)
    {
        let n = normalize(&joined);
        if compare_normalized(&gold_normalized, &n, cfg) {
            (correct, extracted, answer_normalized) = (true, Some(joined), Some(n));
        }
    }
    let unparsed = match (&answer_normalized, correct) {
        (Some(a), false) => unparsed_reason(&gold_normalized, a, cfg),
        _ => None,
    };
    MathVerdict {
        correct,
        extracted,
        gold_normalized,
        answer_normalized,
        unparsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_completions() {
        let cfg = MathConfig::default();
        let v = verify("\\frac{9}{7}", "... so $x = \\boxed{\\dfrac{9}{7}}$.", &cfg);
        assert!(v.correct, "{v:?}");
        assert_eq!(v.extracted.as_deref(), Some("\\dfrac{9}{7}"));
        assert!(!verify("2", "I think it is \\boxed{3}", &cfg).correct);
        assert!(!verify("2", "no final answer", &cfg).correct);
        assert!(verify("18", "Janet makes 18 dollars.\n#### 18", &cfg).correct);
        assert!(verify("2, 3", "x = \\boxed{2} or x = \\boxed{3}.", &cfg).correct);
    }

    #[test]
    fn an_unreadable_answer_says_why() {
        let cfg = MathConfig::default();
        let v = verify("\\frac{1}{2}", "\\boxed{\\frac{1}{2} \\foo}", &cfg);
        assert!(!v.correct);
        assert_eq!(
            v.unparsed.as_deref(),
            Some("unknown command \\foo"),
            "{v:?}"
        );
        assert_eq!(verify("2", "\\boxed{3}", &cfg).unparsed, None);
        assert_eq!(verify("Evelyn", "\\boxed{Devon}", &cfg).unparsed, None);
    }

    #[test]
    fn never_panics_on_garbage() {
        // A deterministic pseudo-random fuzz over characters that stress every stage.
        let alphabet: Vec<char> = "0123456789.,+-*/^_{}()[]|!=<>\\ $%&xyzeEpi\u{3c0}\u{221a}\u{e9}boxedfracsqrtleftright{}"
            .chars()
            .collect();
        let words = [
            "\\boxed{",
            "\\frac",
            "\\sqrt[",
            "\\left(",
            "\\right)",
            "\\begin{pmatrix}",
            "\\end{pmatrix}",
            "\\\\",
            "&",
            "\\cup",
            "\\pm",
            "\\infty",
            "\\text{",
            "^{",
            "_{",
            "\\{",
            "\\}",
            "x=",
            "\\log_",
            "\\sin^",
            "\\binom",
            "!",
            "999999999999999999999",
            "^{99999}",
            "\\operatorname{",
        ];
        let mut state: u64 = 12345;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let cfg = MathConfig::default();
        for _ in 0..3000 {
            let len = (next() % 60) as usize;
            let mut s = String::new();
            for _ in 0..len {
                if next() % 3 == 0 {
                    s.push_str(words[(next() % words.len() as u64) as usize]);
                } else {
                    s.push(alphabet[(next() % alphabet.len() as u64) as usize]);
                }
            }
            let boxed = format!("\\boxed{{{s}}}");
            let _ = verify(&s, &boxed, &cfg);
            let _ = verify("x^2+1", &s, &cfg);
            let _ = answers_equivalent(&s, &s, &cfg);
        }
        // Pathological sizes stay bounded.
        let _ = answers_equivalent(&"(".repeat(100_000), &"{".repeat(100_000), &cfg);
        let _ = answers_equivalent("2^{2^{2^{2^{2^{2^{2}}}}}}", "(10^{10^{10}})!", &cfg);
        let _ = answers_equivalent(&"1,".repeat(5000), &"\\sqrt{2}+".repeat(400), &cfg);
    }
}
