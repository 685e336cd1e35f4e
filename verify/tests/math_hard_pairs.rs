//! Accuracy of the math verifier against hand-labelled hard pairs
//! (`tests/data/math_hard_pairs.jsonl`): equivalences a careful grader accepts and near misses
//! (rounded decimals, dropped absolute values, sets for pairs) that must never earn a reward.

use std::collections::BTreeMap;

use crucible_verify::math::corpus::{LabelledPair, hard_pairs};
use crucible_verify::math::{MathConfig, answers_equivalent, verify};

fn pairs() -> Vec<LabelledPair> {
    hard_pairs().unwrap_or_else(|e| panic!("math_hard_pairs.jsonl: {e}"))
}

#[test]
fn agrees_with_the_careful_grader() {
    let pairs = pairs();
    assert!(pairs.len() >= 400, "{} pairs", pairs.len());
    let cfg = MathConfig::default();
    let mut per_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    for p in &pairs {
        let got = verify(&p.gold, &p.completion, &cfg);
        let entry = per_category.entry(&p.category).or_default();
        entry.1 += 1;
        if got.correct == p.correct {
            entry.0 += 1;
        } else {
            misses.push(format!(
                "[{}] want {} got {}: gold {:?} vs {:?} ({}) — {}",
                p.category,
                p.correct,
                got.correct,
                p.gold,
                got.extracted,
                got.answer_normalized.unwrap_or_default(),
                p.reason
            ));
        }
    }
    for m in &misses {
        eprintln!("{m}");
    }
    for (cat, (right, all)) in &per_category {
        eprintln!("{cat:>18}: {right}/{all}");
    }
    let right: usize = per_category.values().map(|(r, _)| r).sum();
    let accuracy = right as f64 / pairs.len() as f64;
    eprintln!("accuracy {accuracy:.4} over {} pairs", pairs.len());
    assert!(accuracy >= 0.97, "accuracy {accuracy:.4}");
}

/// Every too-lax verdict named in the issue: a wrong answer that looks right must score wrong.
#[test]
fn reward_hacks_score_wrong() {
    let cfg = MathConfig::default();
    let hacks = [
        (r"\frac{1}{3}", "0.333333"),
        (r"\frac{1}{3}", "0.3333333333"),
        (r"100\pi", "314.159"),
        (r"\pi", "3.14159265358979"),
        (r"\sqrt{2}", "1.41421356"),
        ("|x|", "x"),
        ("|x-1|", "x-1"),
        ("(2,5)", r"\{2, 5\}"),
        ("(8,-2)", r"\{8,-2\}"),
    ];
    for (gold, answer) in hacks {
        assert!(
            !answers_equivalent(gold, answer, &cfg),
            "{answer} must not be accepted for {gold}"
        );
        let completion = format!("so the answer is $\\boxed{{{answer}}}$.");
        assert!(!verify(gold, &completion, &cfg).correct, "{completion}");
    }
    // The corpus holds each of them as a hard negative, so the accuracy figure covers them too.
    let pairs = pairs();
    for (gold, answer) in [
        (r"\frac{1}{3}", "0.333333"),
        (r"100\pi", "314.159"),
        (r"\sqrt{2}", "1.41421356"),
        ("|x|", "x"),
        ("(2,5)", r"\{2, 5\}"),
    ] {
        let boxed = format!("\\boxed{{{answer}}}");
        assert!(
            pairs
                .iter()
                .any(|p| p.gold == gold && p.completion.contains(&boxed) && !p.correct),
            "corpus lacks the hard negative {gold} vs {answer}"
        );
    }
}

/// The equivalences the issue names as too strict before: each is accepted.
#[test]
fn hard_equivalences_score_right() {
    let cfg = MathConfig::default();
    for (gold, answer) in [
        (r"\frac{5}{2}", r"2\frac{1}{2}"),
        ("0.5", r"50\%"),
        (r"\frac{\pi}{2}", r"90^\circ"),
        (r"\frac{1}{3}", r"0.\overline{3}"),
        (r"(-\infty, 3]", r"x \le 3"),
        ("y = 2x + 3", "2x - y + 3 = 0"),
        (r"\{3\}", "3"),
        ("(2,5)", "(a,b) = (2,5)"),
        ("12", r"\textbf{(D) } 12"),
        ("5", r"\text{five}"),
        ("2i", "(1+i)^2"),
    ] {
        assert!(
            answers_equivalent(gold, answer, &cfg),
            "{answer} should be accepted for {gold}"
        );
    }
}
