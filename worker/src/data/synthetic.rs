//! Graded multi-step arithmetic and word problems with step-by-step solutions that end in
//! `\boxed{answer}`: the pretraining/SFT corpus of Crucible's own small model and the built-in
//! "synthetic" benchmark of the eval harness.
//!
//! Every problem is a pure function of `(seed, index, difficulty)`, so corpora and benchmarks are
//! reproducible. The held-out split is decided by a hash of the problem text alone: a text is
//! either always held out or never, so no training problem can appear in the benchmark no matter
//! which seeds produced either.

use serde::{Deserialize, Serialize};

use super::rng::SplitMix64;

/// How hard a problem is: the number of operations to chain and the digits of each operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Difficulty {
    /// Operations applied one after another (1–6).
    pub steps: u8,
    /// Digits of the starting number and of added/subtracted operands (1–4); multipliers are
    /// always one digit so that results stay readable.
    pub digits: u8,
}

impl Difficulty {
    /// The graded levels the benchmark reports, easiest first.
    pub const LEVELS: [Difficulty; 4] = [
        Difficulty {
            steps: 1,
            digits: 1,
        },
        Difficulty {
            steps: 2,
            digits: 2,
        },
        Difficulty {
            steps: 3,
            digits: 2,
        },
        Difficulty {
            steps: 4,
            digits: 3,
        },
    ];

    /// A short label such as `"3 steps, 2 digits"`.
    pub fn label(&self) -> String {
        let s = if self.steps == 1 { "" } else { "s" };
        let d = if self.digits == 1 { "" } else { "s" };
        format!("{} step{s}, {} digit{d}", self.steps, self.digits)
    }
}

/// Which side of the train/held-out partition a problem text falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    HeldOut,
}

/// One held-out bucket out of this many (10 %).
const HELD_OUT_BUCKETS: u64 = 10;

impl Split {
    /// The split of a problem text (FNV-1a hash of its bytes, one bucket in ten is held out).
    pub fn of(text: &str) -> Split {
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        if hash % HELD_OUT_BUCKETS == 0 {
            Split::HeldOut
        } else {
            Split::Train
        }
    }
}

/// A problem with its worked solution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What the model is asked.
    pub text: String,
    /// Step-by-step solution, one operation per line, ending in `The answer is \boxed{N}.`
    pub solution: String,
    /// The gold answer as the box holds it (a decimal integer).
    pub answer: String,
    pub difficulty: Difficulty,
}

/// An arithmetic operation applied to the running value.
#[derive(Debug, Clone, Copy)]
enum Op {
    Add(u64),
    Sub(u64),
    Mul(u64),
}

impl Op {
    fn apply(self, value: u64) -> u64 {
        match self {
            Op::Add(n) => value + n,
            Op::Sub(n) => value - n,
            Op::Mul(n) => value * n,
        }
    }

    fn symbol(self) -> (&'static str, u64) {
        match self {
            Op::Add(n) => ("+", n),
            Op::Sub(n) => ("-", n),
            Op::Mul(n) => ("*", n),
        }
    }
}

const NAMES: [&str; 10] = [
    "Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jia",
];
const ITEMS: [&str; 10] = [
    "apples", "books", "coins", "marbles", "stamps", "shells", "pencils", "cards", "stones",
    "beads",
];

fn pick<'a>(rng: &mut SplitMix64, list: &[&'a str]) -> &'a str {
    list[rng.range(0, list.len() as u64 - 1) as usize]
}

fn operand(rng: &mut SplitMix64, digits: u8) -> u64 {
    let lo = if digits <= 1 {
        1
    } else {
        10u64.pow(u32::from(digits) - 1)
    };
    rng.range(lo, 10u64.pow(u32::from(digits)) - 1)
}

/// Draws `steps` operations that keep the running value non-negative.
fn draw_ops(rng: &mut SplitMix64, start: u64, d: Difficulty) -> Vec<Op> {
    let mut value = start;
    let mut ops = Vec::with_capacity(usize::from(d.steps));
    for _ in 0..d.steps {
        let op = match rng.range(0, 2) {
            0 => Op::Add(operand(rng, d.digits)),
            1 if value > 0 => Op::Sub(rng.range(1, value.min(10u64.pow(u32::from(d.digits)) - 1))),
            _ => Op::Mul(rng.range(2, 9)),
        };
        value = op.apply(value);
        ops.push(op);
    }
    ops
}

/// "Start with 12. Add 7, then multiply by 3. What is the result?"
fn chain_problem(start: u64, ops: &[Op]) -> String {
    let phrases: Vec<String> = ops
        .iter()
        .map(|op| match *op {
            Op::Add(n) => format!("add {n}"),
            Op::Sub(n) => format!("subtract {n}"),
            Op::Mul(n) => format!("multiply by {n}"),
        })
        .collect();
    let mut first = phrases.join(", then ");
    first[..1].make_ascii_uppercase();
    format!("Start with {start}. {first}. What is the result?")
}

/// "Ana has 12 coins. She gets 7 more. Then she loses 5. How many coins does Ana have now?"
fn word_problem(rng: &mut SplitMix64, start: u64, ops: &[Op]) -> String {
    let name = pick(rng, &NAMES);
    let item = pick(rng, &ITEMS);
    let mut text = format!("{name} has {start} {item}.");
    for (i, op) in ops.iter().enumerate() {
        // The first step names the person, later ones continue with "Then they …".
        let (who, s) = if i == 0 {
            (name, "s")
        } else {
            ("Then they", "")
        };
        let sentence = match *op {
            Op::Add(n) => format!(" {who} get{s} {n} more."),
            Op::Sub(n) => format!(" {who} give{s} away {n}."),
            Op::Mul(n) => format!(" {who} end{s} up with {n} times as many."),
        };
        text.push_str(&sentence);
    }
    text.push_str(&format!(" How many {item} does {name} have now?"));
    text
}

/// The worked solution: one `a op b = c.` line per step, then the boxed answer.
fn solution(start: u64, ops: &[Op]) -> (String, u64) {
    let mut value = start;
    let mut lines = Vec::with_capacity(ops.len() + 1);
    for op in ops {
        let (sym, n) = op.symbol();
        let next = op.apply(value);
        lines.push(format!("{value} {sym} {n} = {next}."));
        value = next;
    }
    lines.push(format!("The answer is \\boxed{{{value}}}."));
    (lines.join("\n"), value)
}

/// One problem drawn from `rng` (of either split).
fn draw(rng: &mut SplitMix64, d: Difficulty) -> Problem {
    let start = operand(rng, d.digits);
    let ops = draw_ops(rng, start, d);
    let text = if rng.range(0, 1) == 0 {
        chain_problem(start, &ops)
    } else {
        word_problem(rng, start, &ops)
    };
    let (solution, answer) = solution(start, &ops);
    Problem {
        text,
        solution,
        answer: answer.to_string(),
        difficulty: d,
    }
}

/// Problem `index` of the stream `(seed, split)` at difficulty `d`; redraws until the text falls
/// on `split`, so the same arguments always give the same problem.
pub fn problem(seed: u64, split: Split, index: u64, d: Difficulty) -> Problem {
    let mut rng = SplitMix64::for_item(seed, index);
    loop {
        let p = draw(&mut rng, d);
        if Split::of(&p.text) == split {
            return p;
        }
    }
}

/// The built-in held-out benchmark: `per_level` distinct problems at each of
/// [`Difficulty::LEVELS`], easiest first.
pub fn benchmark(seed: u64, per_level: usize) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::with_capacity(per_level * Difficulty::LEVELS.len());
    let mut seen = std::collections::HashSet::new();
    for d in Difficulty::LEVELS {
        let mut index = 0;
        let mut taken = 0;
        // Level 1 has few distinct texts, so the loop bound guards against asking for more
        // problems than exist.
        while taken < per_level && index < (per_level as u64) * 1000 {
            let p = problem(seed, Split::HeldOut, index, d);
            index += 1;
            if seen.insert(p.text.clone()) {
                out.push(p);
                taken += 1;
            }
        }
    }
    out
}

/// The content of the last `\boxed{…}` in `text` (braces may nest), trimmed.
pub fn boxed_answer(text: &str) -> Option<&str> {
    let start = text.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(text[start..start + i].trim());
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `completion` boxes exactly the integer `gold` (leading `+`, zeros and thousands
/// commas are tolerated). This is the exact-answer check of the synthetic benchmark.
pub fn is_correct(completion: &str, gold: &str) -> bool {
    let normalise = |s: &str| -> Option<i128> {
        let s: String = s
            .chars()
            .filter(|c| *c != ',' && !c.is_whitespace())
            .collect();
        s.strip_prefix('+').unwrap_or(&s).parse().ok()
    };
    match (
        boxed_answer(completion).and_then(normalise),
        normalise(gold),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solutions_are_correct_and_boxed() {
        for i in 0..200 {
            for d in Difficulty::LEVELS {
                let p = problem(3, Split::Train, i, d);
                assert!(is_correct(&p.solution, &p.answer), "{p:?}");
                assert_eq!(p.solution.lines().count(), usize::from(d.steps) + 1);
                // Re-evaluate every step line independently.
                for line in p.solution.lines().take(usize::from(d.steps)) {
                    let t: Vec<&str> = line.trim_end_matches('.').split(' ').collect();
                    let (a, b, c): (u64, u64, u64) = (
                        t[0].parse().unwrap(),
                        t[2].parse().unwrap(),
                        t[4].parse().unwrap(),
                    );
                    let want = match t[1] {
                        "+" => a + b,
                        "-" => a - b,
                        _ => a * b,
                    };
                    assert_eq!(want, c, "{line}");
                }
            }
        }
    }

    #[test]
    fn generation_is_seeded() {
        let d = Difficulty::LEVELS[2];
        assert_eq!(
            problem(1, Split::Train, 5, d),
            problem(1, Split::Train, 5, d)
        );
        assert_ne!(
            problem(1, Split::Train, 5, d),
            problem(2, Split::Train, 5, d)
        );
    }

    #[test]
    fn held_out_split_never_overlaps_training() {
        let bench = benchmark(11, 50);
        assert_eq!(bench.len(), 4 * 50);
        let held: std::collections::HashSet<&str> = bench.iter().map(|p| p.text.as_str()).collect();
        for seed in [0, 11, 12] {
            for i in 0..3000 {
                let d = Difficulty::LEVELS[(i % 4) as usize];
                let p = problem(seed, Split::Train, i, d);
                assert!(!held.contains(p.text.as_str()), "{} leaked", p.text);
                assert_eq!(Split::of(&p.text), Split::Train);
            }
        }
        assert!(bench.iter().all(|p| Split::of(&p.text) == Split::HeldOut));
    }

    #[test]
    fn boxed_answers_are_extracted_and_compared() {
        assert_eq!(
            boxed_answer("so \\boxed{1} no \\boxed{ {4}2 }"),
            Some("{4}2")
        );
        assert_eq!(boxed_answer("\\boxed{12"), None);
        assert!(is_correct("The answer is \\boxed{1,024}.", "1024"));
        assert!(is_correct("\\boxed{+007}", "7"));
        assert!(!is_correct("\\boxed{8}", "7"));
        assert!(!is_correct("7", "7"));
    }
}
