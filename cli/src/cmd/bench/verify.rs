//! `crucible bench verify`: verdicts per second for math (against HF `math-verify` on the same
//! pairs, when a Python with it is given) and for sandboxed code judging.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crucible_types::CodeReward;
use crucible_verify::code::{CodeProblem, Judge, SandboxConfig};
use crucible_verify::math::{MathConfig, verify};
use crucible_verify::{Grader, Task, TimedGrade, VerifierPool};
use serde_json::{Value, json};

use crate::cmd::verify::progress;

/// Arguments of `crucible bench verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The datasets folder (MATH-500 and HumanEval are read from it).
    #[arg(long, env = "CRUCIBLE_DATA_DIR")]
    data: PathBuf,
    /// Times the math pairs are verified (more repeats, steadier figure).
    #[arg(long, default_value_t = 5)]
    math_repeats: usize,
    /// A Python interpreter with `math-verify` installed, to measure the peer on the same pairs.
    #[arg(long)]
    peer_python: Option<PathBuf>,
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
fn math_pairs(data: &Path) -> anyhow::Result<Vec<(String, String, bool)>> {
    let recs = read_jsonl(&data.join("math500/test.jsonl"))?;
    let field = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let mut pairs = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let (Some(gold), Some(sol)) = (field(r, "answer"), field(r, "solution")) else {
            continue;
        };
        pairs.push((gold.clone(), sol, true));
        let other = &recs[(i + 1) % recs.len()];
        if let (Some(other_gold), Some(other_sol)) =
            (field(other, "answer"), field(other, "solution"))
            && other_gold != gold
        {
            pairs.push((gold, other_sol, false));
        }
    }
    Ok(pairs)
}

struct PeerResult {
    seconds: f64,
    verdicts: Vec<bool>,
}

fn run_peer(python: &Path, pairs: &[(String, String, bool)]) -> anyhow::Result<PeerResult> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("pairs.jsonl");
    let script = dir.path().join("peer.py");
    let lines: Vec<String> = pairs
        .iter()
        .map(|(g, c, _)| json!({"gold": g, "completion": c}).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n"))?;
    std::fs::write(&script, PEER_SCRIPT)?;
    let out = std::process::Command::new(python)
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
    let verdicts = v["verdicts"]
        .as_array()
        .context("peer verdicts")?
        .iter()
        .map(|b| b.as_bool() == Some(true))
        .collect();
    Ok(PeerResult {
        seconds: v["seconds"].as_f64().context("peer seconds")?,
        verdicts,
    })
}

fn accuracy(verdicts: &[bool], pairs: &[(String, String, bool)]) -> f64 {
    let right = verdicts
        .iter()
        .zip(pairs)
        .filter(|(v, p)| **v == p.2)
        .count();
    right as f64 / pairs.len().max(1) as f64
}

/// Runs the benchmark and prints its figures, the last line as JSON.
pub fn run(args: Args) -> anyhow::Result<()> {
    // Math: single thread, every pair `math_repeats` times.
    let pairs = math_pairs(&args.data)?;
    let cfg = MathConfig::default();
    let bar = progress((pairs.len() * args.math_repeats) as u64, "math");
    let mut verdicts = Vec::new();
    let started = Instant::now();
    for rep in 0..args.math_repeats {
        for (gold, completion, _) in &pairs {
            let v = verify(gold, completion, &cfg).correct;
            if rep == 0 {
                verdicts.push(v);
            }
            bar.inc(1);
        }
    }
    let math_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let math_rate = (pairs.len() * args.math_repeats) as f64 / math_secs;
    let ours_acc = accuracy(&verdicts, &pairs);
    println!(
        "math: {} pairs × {} in {math_secs:.2}s → {math_rate:.0} verdicts/s, accuracy {:.4}",
        pairs.len(),
        args.math_repeats,
        ours_acc
    );

    let peer = match &args.peer_python {
        Some(py) => {
            let p = run_peer(py, &pairs)?;
            let rate = pairs.len() as f64 / p.seconds;
            let agree = p
                .verdicts
                .iter()
                .zip(&verdicts)
                .filter(|(a, b)| a == b)
                .count() as f64
                / pairs.len() as f64;
            let acc = accuracy(&p.verdicts, &pairs);
            println!(
                "math-verify: {rate:.0} verdicts/s, accuracy {acc:.4}, agreement with ours {agree:.4}; ratio ours/peer {:.1}×",
                math_rate / rate
            );
            json!({"verdicts_per_s": rate, "accuracy": acc, "agreement": agree, "speed_ratio": math_rate / rate})
        }
        None => {
            println!(
                "math-verify peer not measured (pass --peer-python PATH to a Python with math-verify)"
            );
            Value::Null
        }
    };

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
        "math": {"pairs": pairs.len(), "repeats": args.math_repeats, "verdicts_per_s": math_rate, "accuracy": ours_acc, "peer_math_verify": peer},
        "code": {"solutions": problems.len(), "tests": tests, "passed": passed, "judges": args.judges,
                 "solutions_per_s": solutions_rate, "test_verdicts_per_s": tests_rate, "mean_judge_s": judge_secs / problems.len().max(1) as f64},
    });
    println!("{summary}");
    Ok(())
}
