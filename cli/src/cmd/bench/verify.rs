//! `crucible bench verify`: math verdicts per second and accuracy — on MATH-500 pairs and on the
//! hand-labelled hard pairs, per category — against HF `math-verify` on the same pairs, and
//! sandboxed code judging.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crucible_types::CodeReward;
use crucible_verify::code::{CodeProblem, Judge, SandboxConfig};
use crucible_verify::math::corpus::{LabelledPair, hard_pairs};
use crucible_verify::math::{MathConfig, verify};
use crucible_verify::{Grader, Task, TimedGrade, VerifierPool};
use serde_json::{Value, json};

use crucible_verify::cli::progress;

/// The peer's version, pinned so that its figures are comparable between runs.
const MATH_VERIFY_PIN: &str = "math-verify==0.9.0";

/// Arguments of `crucible bench verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The datasets folder (MATH-500 and HumanEval are read from it).
    #[arg(long, env = "CRUCIBLE_DATA_DIR")]
    data: PathBuf,
    /// Times the math pairs are verified (more repeats, steadier figure).
    #[arg(long, default_value_t = 5)]
    math_repeats: usize,
    /// A Python interpreter with `math-verify` installed. Default: the virtualenv
    /// `$CARGO_TARGET_DIR/math-verify-venv`, created with the pinned version when missing.
    #[arg(long)]
    peer_python: Option<PathBuf>,
    /// Do not measure the math-verify peer.
    #[arg(long, conflicts_with = "peer_python")]
    no_peer: bool,
    /// HumanEval problems whose canonical solutions are judged.
    #[arg(long, default_value_t = 40)]
    code_problems: usize,
    /// Concurrent judges in the pool.
    #[arg(long, default_value_t = 2)]
    judges: usize,
}

/// The peer: HF math-verify, timed on the same (gold, completion) pairs in one process.
const PEER_SCRIPT: &str = r#"
import json, sys, time
from math_verify import parse, verify
pairs = [json.loads(l) for l in open(sys.argv[1])]
t = time.perf_counter()
out = []
for p in pairs:
    try:
        gold = parse("$" + p["gold"] + "$")
        ans = parse(p["completion"])
        out.append(bool(verify(gold, ans)))
    except Exception:
        out.append(False)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "verdicts": out}))
"#;

fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// MATH-500 pairs: each gold with its own reference solution (label true) and with the next
/// problem's solution (label false unless both golds are the same text).
fn math500_pairs(data: &Path) -> anyhow::Result<Vec<LabelledPair>> {
    let recs = read_jsonl(&data.join("math500/test.jsonl"))?;
    let field = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let pair = |gold: &str, completion: String, correct: bool| LabelledPair {
        category: "math500".into(),
        gold: gold.to_string(),
        completion,
        correct,
        reason: String::new(),
    };
    let mut pairs = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let (Some(gold), Some(sol)) = (field(r, "answer"), field(r, "solution")) else {
            continue;
        };
        pairs.push(pair(&gold, sol, true));
        let other = &recs[(i + 1) % recs.len()];
        if let (Some(other_gold), Some(other_sol)) =
            (field(other, "answer"), field(other, "solution"))
            && other_gold != gold
        {
            pairs.push(pair(&gold, other_sol, false));
        }
    }
    Ok(pairs)
}

/// One verifier's verdicts on a pair set, and the time they took.
struct Run {
    verdicts: Vec<bool>,
    verdicts_per_s: f64,
}

impl Run {
    fn accuracy(&self, pairs: &[LabelledPair]) -> f64 {
        let right = self
            .verdicts
            .iter()
            .zip(pairs)
            .filter(|(v, p)| **v == p.correct)
            .count();
        right as f64 / pairs.len().max(1) as f64
    }

    /// (right, total) per category.
    fn per_category<'a>(&self, pairs: &'a [LabelledPair]) -> BTreeMap<&'a str, (usize, usize)> {
        let mut out: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (v, p) in self.verdicts.iter().zip(pairs) {
            let e = out.entry(p.category.as_str()).or_default();
            e.0 += usize::from(*v == p.correct);
            e.1 += 1;
        }
        out
    }
}

/// Ours, single thread, every pair `repeats` times.
fn run_ours(pairs: &[LabelledPair], repeats: usize, cfg: &MathConfig, label: &str) -> Run {
    let bar = progress((pairs.len() * repeats) as u64, label);
    let mut verdicts = Vec::with_capacity(pairs.len());
    let started = Instant::now();
    for rep in 0..repeats {
        for p in pairs {
            let v = verify(&p.gold, &p.completion, cfg).correct;
            if rep == 0 {
                verdicts.push(v);
            }
            bar.inc(1);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Run {
        verdicts,
        verdicts_per_s: (pairs.len() * repeats) as f64 / secs,
    }
}

/// The interpreter for the peer: the one given, else the virtualenv under the target folder
/// (installed with the pinned math-verify when missing). `None` when it cannot be had.
fn peer_python(args: &Args) -> Option<PathBuf> {
    if args.no_peer {
        return None;
    }
    if let Some(p) = &args.peer_python {
        return Some(p.clone());
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    let venv = target.join("math-verify-venv");
    let python = venv.join("bin/python");
    let has_peer = |py: &Path| {
        Command::new(py)
            .args(["-c", "import math_verify"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has_peer(&python) {
        eprintln!(
            "installing {MATH_VERIFY_PIN} from PyPI into {}",
            venv.display()
        );
        let installed = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", MATH_VERIFY_PIN])
                .status()
                .is_ok_and(|s| s.success());
        if !installed || !has_peer(&python) {
            eprintln!("*** WARNING: could not install {MATH_VERIFY_PIN}: the peer is SKIPPED ***");
            return None;
        }
    }
    Some(python)
}

fn run_peer(python: &Path, pairs: &[LabelledPair]) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("pairs.jsonl");
    let script = dir.path().join("peer.py");
    let lines: Vec<String> = pairs
        .iter()
        .map(|p| json!({"gold": p.gold, "completion": p.completion}).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n"))?;
    std::fs::write(&script, PEER_SCRIPT)?;
    let out = Command::new(python)
        .arg(&script)
        .arg(&data)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "math-verify peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .last()
        .context("math-verify peer printed nothing")?;
    let v: Value = serde_json::from_str(last)?;
    let verdicts: Vec<bool> = v["verdicts"]
        .as_array()
        .context("peer verdicts")?
        .iter()
        .map(|b| b.as_bool() == Some(true))
        .collect();
    if verdicts.len() != pairs.len() {
        bail!(
            "math-verify peer gave {} verdicts for {} pairs",
            verdicts.len(),
            pairs.len()
        );
    }
    let seconds = v["seconds"].as_f64().context("peer seconds")?;
    Ok(Run {
        verdicts,
        verdicts_per_s: pairs.len() as f64 / seconds,
    })
}

/// Share of pairs where two verifiers give the same verdict.
fn agreement(a: &Run, b: &Run) -> f64 {
    let same = a
        .verdicts
        .iter()
        .zip(&b.verdicts)
        .filter(|(x, y)| x == y)
        .count();
    same as f64 / a.verdicts.len().max(1) as f64
}

/// Prints the per-category accuracy of ours (and the peer's) on the hard pairs; returns it as JSON.
fn category_table(pairs: &[LabelledPair], ours: &Run, peer: Option<&Run>) -> Value {
    let mine = ours.per_category(pairs);
    let theirs = peer.map(|p| p.per_category(pairs));
    let frac = |(r, n): (usize, usize)| r as f64 / n.max(1) as f64;
    println!(
        "{:<18} {:>5} {:>9} {:>12}",
        "category", "pairs", "crucible", "math-verify"
    );
    let mut rows = serde_json::Map::new();
    for (cat, &(r, n)) in &mine {
        let peer_acc = theirs.as_ref().and_then(|t| t.get(cat).copied()).map(frac);
        let shown = peer_acc.map_or_else(|| "—".to_string(), |a| format!("{a:.3}"));
        println!("{cat:<18} {n:>5} {:>9.3} {shown:>12}", frac((r, n)));
        rows.insert(
            (*cat).to_string(),
            json!({"pairs": n, "crucible": frac((r, n)), "math_verify": peer_acc}),
        );
    }
    Value::Object(rows)
}

/// Runs the benchmark and prints its figures, the last line as JSON.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = MathConfig::default();
    let python = peer_python(&args);
    let peer = |pairs: &[LabelledPair]| python.as_deref().map(|py| run_peer(py, pairs)).transpose();

    // Math on MATH-500: speed and accuracy against the labels.
    let pairs = math500_pairs(&args.data)?;
    let ours = run_ours(&pairs, args.math_repeats, &cfg, "math-500");
    println!(
        "math-500: {} pairs × {} → {:.0} verdicts/s, accuracy {:.4}",
        pairs.len(),
        args.math_repeats,
        ours.verdicts_per_s,
        ours.accuracy(&pairs)
    );
    let theirs = peer(&pairs)?;
    let math500_peer = match &theirs {
        Some(p) => {
            let ratio = ours.verdicts_per_s / p.verdicts_per_s;
            println!(
                "math-verify: {:.0} verdicts/s, accuracy {:.4}, agreement with ours {:.4}; ratio ours/peer {ratio:.1}×",
                p.verdicts_per_s,
                p.accuracy(&pairs),
                agreement(&ours, p)
            );
            json!({"verdicts_per_s": p.verdicts_per_s, "accuracy": p.accuracy(&pairs),
                   "agreement": agreement(&ours, p), "speed_ratio": ratio})
        }
        None => {
            println!("math-verify peer not measured");
            Value::Null
        }
    };

    // Math on the hand-labelled hard pairs: accuracy per category against a careful grader.
    let hard = hard_pairs()?;
    let hard_ours = run_ours(&hard, args.math_repeats, &cfg, "hard pairs");
    let hard_theirs = peer(&hard)?;
    println!(
        "hard pairs: {} hand-labelled → crucible accuracy {:.4} at {:.0} verdicts/s{}",
        hard.len(),
        hard_ours.accuracy(&hard),
        hard_ours.verdicts_per_s,
        hard_theirs.as_ref().map_or_else(String::new, |p| format!(
            "; math-verify {:.4} at {:.0} verdicts/s (ratio {:.1}×)",
            p.accuracy(&hard),
            p.verdicts_per_s,
            hard_ours.verdicts_per_s / p.verdicts_per_s
        ))
    );
    let categories = category_table(&hard, &hard_ours, hard_theirs.as_ref());
    let hard_summary = json!({
        "pairs": hard.len(),
        "crucible": {"accuracy": hard_ours.accuracy(&hard), "verdicts_per_s": hard_ours.verdicts_per_s},
        "math_verify": hard_theirs.as_ref().map(|p| json!({
            "accuracy": p.accuracy(&hard), "verdicts_per_s": p.verdicts_per_s,
            "speed_ratio": hard_ours.verdicts_per_s / p.verdicts_per_s})),
        "per_category": categories,
    });

    // Code: canonical HumanEval solutions through the pool.
    let problems: Vec<CodeProblem> = read_jsonl(&args.data.join("humaneval/HumanEval.jsonl"))?
        .iter()
        .take(args.code_problems)
        .map(CodeProblem::from_json)
        .collect::<Result<_, _>>()?;
    let judge = Judge::new(SandboxConfig::default())?;
    let grader = Arc::new(Grader::new(cfg, Some(judge), CodeReward::Strict));
    let mut pool = VerifierPool::new(args.judges, args.judges * 2, grader)?;
    let bar = progress(problems.len() as u64, "code");
    let started = Instant::now();
    let (mut tests, mut passed, mut judge_secs) = (0usize, 0usize, 0.0f64);
    let mut done = 0;
    let mut absorb = |v: TimedGrade| -> anyhow::Result<()> {
        let (ok, all) = v.grade?.tests.unwrap_or_default();
        tests += all;
        passed += ok;
        judge_secs += v.ran.as_secs_f64();
        bar.inc(1);
        Ok(())
    };
    for p in problems.iter().cloned() {
        let source = p.reference_solution.clone().unwrap_or_default();
        pool.submit(Arc::new(Task::code(p)?), source)?;
        while let Some(v) = pool.try_recv() {
            absorb(v)?;
            done += 1;
        }
    }
    while done < problems.len() {
        if let Some(v) = pool.recv_timeout(Duration::from_secs(600))? {
            absorb(v)?;
            done += 1;
        }
    }
    let code_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let solutions_rate = problems.len() as f64 / code_secs;
    let tests_rate = tests as f64 / code_secs;
    println!(
        "code: {} solutions, {tests} tests ({passed} passed) with {} judges in {code_secs:.2}s → {solutions_rate:.2} solutions/s, {tests_rate:.1} test verdicts/s",
        problems.len(),
        args.judges
    );
    let summary = json!({
        "math": {"pairs": pairs.len(), "repeats": args.math_repeats, "verdicts_per_s": ours.verdicts_per_s,
                 "accuracy": ours.accuracy(&pairs), "peer_math_verify": math500_peer},
        "math_hard_pairs": hard_summary,
        "code": {"solutions": problems.len(), "tests": tests, "passed": passed, "judges": args.judges,
                 "solutions_per_s": solutions_rate, "test_verdicts_per_s": tests_rate, "mean_judge_s": judge_secs / problems.len().max(1) as f64},
    });
    println!("{summary}");
    Ok(())
}
