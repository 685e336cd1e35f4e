//! Table-driven check of the math verifier on answer pairs built from the public benchmark files:
//! gold answers against their other written forms (the boxed answer of the reference solution,
//! programmatic rewrites), and hard negatives (another problem's answer, perturbed numbers).
//!
//! Reads `$CRUCIBLE_DATA_DIR/{math500,math,aime2024,aime2025,amc2023}`; skips when the variable is unset.

use std::path::PathBuf;
use std::sync::LazyLock;

use crucible_verify::math::{MathConfig, answers_equivalent, last_boxed, verify};
use regex::Regex;
use serde_json::Value;

fn data_dir() -> Option<PathBuf> {
    crucible_types::testing::data_dir("the dataset answer-pair test")
}

fn read_jsonl(dir: &std::path::Path, rel: &str) -> Vec<Value> {
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

#[derive(Default)]
struct Table {
    pairs: Vec<(String, String, bool, &'static str)>,
}

impl Table {
    fn add(&mut self, gold: &str, answer: String, expect: bool, kind: &'static str) {
        self.pairs.push((gold.to_string(), answer, expect, kind));
    }
}

static FRAC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}").unwrap());
static SIMPLE_FRAC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$").unwrap());
static MIXED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d\s*\\[dt]?frac").unwrap());
static INTEGER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^-?\d+$").unwrap());
static SQRT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\\sqrt\{(\d)\}").unwrap());
static PAIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\((?:\\left)?([^(),]+),([^(),]+)\)$").unwrap());
static FIRST_INT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").unwrap());

/// A terminating decimal for `p/q` when one exists.
fn decimal_of(p: u64, q: u64) -> Option<String> {
    let mut d = q;
    for f in [2, 5] {
        while d.is_multiple_of(f) {
            d /= f;
        }
    }
    if d != 1 || q == 0 {
        return None;
    }
    let v = p as f64 / q as f64;
    Some(format!("{v}"))
}

/// Rewrites of a gold answer that must stay equivalent.
fn rewrites(gold: &str) -> Vec<String> {
    let mut out = vec![format!("The answer is ${gold}$.")];
    // `1\frac{4}{5}` is the mixed number 1⅘: writing its fraction as `(4)/(5)` would make a product.
    if FRAC.is_match(gold) && !MIXED.is_match(gold) {
        out.push(FRAC.replace_all(gold, "($1)/($2)").into_owned());
        out.push(gold.replace("\\frac", "\\dfrac"));
    }
    if gold.contains('(') && !gold.contains("\\left") {
        out.push(gold.replace('(', "\\left(").replace(')', "\\right)"));
    }
    if let Some(c) = SIMPLE_FRAC.captures(gold)
        && let (Ok(p), Ok(q)) = (c[2].parse::<u64>(), c[3].parse::<u64>())
        && let Some(d) = decimal_of(p, q)
    {
        out.push(format!("{}{d}", &c[1]));
    }
    if INTEGER.is_match(gold) {
        out.push(format!("x = {gold}"));
        out.push(format!("{gold}.0"));
        out.push(format!("\\boxed{{{gold}}}"));
        if let Ok(n) = gold.parse::<i64>()
            && n >= 1000
        {
            let s = n.to_string();
            let mut grouped = String::new();
            for (i, ch) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(ch);
            }
            out.push(grouped);
        }
    }
    if gold == "\\frac{1}{2}" || gold == "\\frac12" {
        out.push("0.5".into());
    }
    if SQRT.is_match(gold) {
        out.push(SQRT.replace_all(gold, "\\sqrt $1").into_owned());
    }
    if INTEGER.is_match(gold) {
        out.push(format!("{gold}^\\circ"));
        out.push(format!("{gold} \\text{{ units}}"));
    }
    let items: Vec<&str> = gold.split(", ").collect();
    if items.len() > 1 && !gold.contains(['(', '[', '{', '\\']) {
        out.push(items.iter().rev().copied().collect::<Vec<_>>().join(","));
    }
    out.push(gold.replace(' ', ""));
    out
}

/// Near misses that keep the notation: flipped sign, swapped tuple, flipped interval end.
fn structural_negatives(gold: &str) -> Vec<String> {
    let mut out = Vec::new();
    if (INTEGER.is_match(gold) || SIMPLE_FRAC.is_match(gold)) && gold != "0" {
        out.push(format!("-{gold}").replace("--", ""));
    }
    if let Some(c) = PAIR.captures(gold)
        && c[1].trim() != c[2].trim()
    {
        out.push(format!("({}, {})", c[2].trim(), c[1].trim()));
    }
    if gold.starts_with('[') && gold.ends_with(']') && gold.contains(',') {
        out.push(format!("({}", &gold[1..]));
    }
    out
}

/// Increments the first integer in the answer: a near miss that must be rejected.
fn perturb(gold: &str) -> Option<String> {
    let m = FIRST_INT.find(gold)?;
    let n: u64 = m.as_str().parse().ok()?;
    Some(format!(
        "{}{}{}",
        &gold[..m.start()],
        n + 1,
        &gold[m.end()..]
    ))
}

#[test]
fn dataset_answer_pairs() {
    let Some(dir) = data_dir() else { return };
    let mut t = Table::default();
    let math500 = read_jsonl(&dir, "math500/test.jsonl");
    let math = read_jsonl(&dir, "math/test.jsonl");
    let aime24 = read_jsonl(&dir, "aime2024/test.jsonl");
    let aime25 = read_jsonl(&dir, "aime2025/test.jsonl");
    let amc = read_jsonl(&dir, "amc2023/test.jsonl");

    // Gold vs the whole reference solution (its last boxed answer is extracted).
    for rec in math500
        .iter()
        .chain(math.iter().take(1500))
        .chain(aime24.iter())
    {
        let (Some(gold), Some(sol)) = (field(rec, "answer"), field(rec, "solution")) else {
            continue;
        };
        if last_boxed(sol).is_some() {
            t.add(gold, sol.to_string(), true, "solution");
        }
    }
    // Rewrites and negatives of every gold answer.
    let golds: Vec<&str> = math500
        .iter()
        .chain(aime24.iter())
        .chain(aime25.iter())
        .chain(amc.iter())
        .filter_map(|r| field(r, "answer"))
        .collect();
    for (i, gold) in golds.iter().enumerate() {
        for r in rewrites(gold) {
            t.add(gold, r, true, "rewrite");
        }
        if let Some(p) = perturb(gold) {
            t.add(gold, format!("\\boxed{{{p}}}"), false, "perturbed");
        }
        for n in structural_negatives(gold) {
            t.add(gold, n, false, "structural");
        }
        // Another problem's answer, when both are integers with different values.
        let other = golds[(i + 7) % golds.len()];
        if INTEGER.is_match(gold)
            && INTEGER.is_match(other)
            && gold.parse::<i64>().ok() != other.parse::<i64>().ok()
        {
            t.add(gold, format!("\\boxed{{{other}}}"), false, "other-problem");
        }
        // Another problem's non-integer answer (fractions, radicals, tuples, intervals, text).
        let other = golds[(i + 13) % golds.len()];
        if !INTEGER.is_match(gold)
            && !INTEGER.is_match(other)
            && gold.replace(' ', "") != other.replace(' ', "")
        {
            t.add(gold, format!("\\boxed{{{other}}}"), false, "other-problem");
        }
    }

    let cfg = MathConfig::default();
    let mut failures = Vec::new();
    let (mut pos, mut neg) = (0usize, 0usize);
    for (gold, answer, expect, kind) in &t.pairs {
        let got =
            if *kind == "solution" || answer.contains("\\boxed") || answer.contains("answer is") {
                verify(gold, answer, &cfg).correct
            } else {
                answers_equivalent(gold, answer, &cfg)
            };
        if *expect {
            pos += 1
        } else {
            neg += 1
        }
        if got != *expect {
            let shown: String = answer
                .chars()
                .rev()
                .take(120)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            failures.push(format!(
                "[{kind}] expect {expect}: gold {gold:?} vs …{shown:?}"
            ));
        }
    }
    for f in &failures {
        eprintln!("{f}");
    }
    eprintln!(
        "{} pairs ({pos} positive, {neg} negative), {} disagree",
        t.pairs.len(),
        failures.len()
    );
    assert!(t.pairs.len() >= 300);
    assert!(
        failures.is_empty(),
        "{} of {} pairs disagree",
        failures.len(),
        t.pairs.len()
    );
}
