//! The verifiers' command line, `crucible verify …` and the candle-free `crucible-verify …`:
//! run a verifier by hand, to debug a verdict. Behind the `cli` feature, so the library itself
//! stays free of clap and anyhow.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::code::{CodeProblem, Isolation, Judge, Language, SandboxConfig, Solution, TierLayout};
use crate::math::{ExtractConfig, MathConfig, Strategy, verify};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

/// Verifier subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Check a math answer against a gold answer (one pair, or a JSONL file of pairs).
    Math(MathArgs),
    /// Judge a program against a code problem's tests in the sandbox.
    Code(CodeArgs),
}

/// Arguments of `crucible verify math`.
#[derive(clap::Args)]
pub struct MathArgs {
    /// The gold answer (LaTeX or plain text; a `\boxed{}` inside is extracted).
    #[arg(long, requires = "answer", conflicts_with = "jsonl")]
    gold: Option<String>,
    /// The answer or the whole completion (a bare answer is taken as is).
    #[arg(long)]
    answer: Option<String>,
    /// A JSONL file of {"gold": …, "completion": …} lines; writes one {"correct", "extracted"} line each.
    #[arg(long)]
    jsonl: Option<PathBuf>,
    /// Where to write the JSONL verdicts (default: stdout).
    #[arg(long, requires = "jsonl")]
    out: Option<PathBuf>,
    /// Extraction strategies in order.
    #[arg(long, value_delimiter = ',', value_enum, default_values = ["boxed", "answer-phrase", "gsm8k-hashes"])]
    extract: Vec<ExtractArg>,
    /// Treat bare comma lists as ordered tuples.
    #[arg(long)]
    ordered_lists: bool,
}

/// Extraction strategy names on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ExtractArg {
    Boxed,
    AnswerPhrase,
    Gsm8kHashes,
    LastNumber,
}

impl From<ExtractArg> for Strategy {
    fn from(a: ExtractArg) -> Strategy {
        match a {
            ExtractArg::Boxed => Strategy::Boxed,
            ExtractArg::AnswerPhrase => Strategy::AnswerPhrase,
            ExtractArg::Gsm8kHashes => Strategy::Gsm8kHashes,
            ExtractArg::LastNumber => Strategy::LastNumber,
        }
    }
}

/// Arguments of `crucible verify code`.
#[derive(clap::Args)]
pub struct CodeArgs {
    /// A problem: one JSON object, or a JSONL file (see --line) in the code_rl, HumanEval or MBPP format.
    #[arg(long)]
    problem: PathBuf,
    /// Which line of a JSONL problem file (1-based).
    #[arg(long, default_value_t = 1)]
    line: usize,
    /// The candidate: a source file (.py, .cpp) or a completion with a fenced code block.
    #[arg(long, required_unless_present = "reference")]
    solution: Option<PathBuf>,
    /// Judge the problem's own reference solution instead.
    #[arg(long, conflicts_with = "solution")]
    reference: bool,
    /// Difficulty tier per test, easiest = 0 (default: the problem's tiers, else one tier).
    #[arg(long, value_delimiter = ',')]
    tiers: Vec<usize>,
}

/// Runs the chosen subcommand.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Math(args) => math(args),
        Command::Code(args) => code(args),
    }
}

fn math_config(args: &MathArgs, whole_text: bool) -> MathConfig {
    let mut strategies: Vec<Strategy> = args.extract.iter().map(|&a| a.into()).collect();
    if whole_text {
        strategies.push(Strategy::WholeText);
    }
    MathConfig {
        extract: ExtractConfig { strategies },
        ordered_lists: args.ordered_lists,
        ..MathConfig::default()
    }
}

#[derive(Deserialize)]
struct MathLine {
    gold: String,
    completion: String,
}

fn math(args: MathArgs) -> anyhow::Result<()> {
    if let (Some(gold), Some(answer)) = (&args.gold, &args.answer) {
        let v = verify(gold, answer, &math_config(&args, true));
        println!(
            "verdict:             {}",
            if v.correct { "correct" } else { "wrong" }
        );
        println!(
            "extracted:           {}",
            v.extracted.as_deref().unwrap_or("(nothing)")
        );
        println!("gold, normalised:    {}", v.gold_normalized);
        println!(
            "answer, normalised:  {}",
            v.answer_normalized.as_deref().unwrap_or("(nothing)")
        );
        if let Some(why) = &v.unparsed {
            println!("unparsed:            {why}");
        }
        return Ok(());
    }
    let Some(path) = &args.jsonl else {
        bail!("give --gold and --answer, or --jsonl FILE");
    };
    let cfg = math_config(&args, false);
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(&mut out);
    let bar = progress(lines.len() as u64, "verifying");
    let (mut correct, mut total) = (0usize, 0usize);
    for (i, line) in lines.iter().enumerate() {
        bar.inc(1);
        if line.trim().is_empty() {
            continue;
        }
        let pair: MathLine = serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{}: expected {{\"gold\": string, \"completion\": string}}",
                path.display(),
                i + 1
            )
        })?;
        let v = verify(&pair.gold, &pair.completion, &cfg);
        correct += usize::from(v.correct);
        total += 1;
        let row = serde_json::json!({"correct": v.correct, "extracted": v.extracted, "unparsed": v.unparsed});
        writeln!(out, "{row}")?;
    }
    out.flush()?;
    bar.finish_and_clear();
    tracing::info!(correct, total, "verified {}", path.display());
    Ok(())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed}<{eta}]")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

fn read_problem(path: &Path, line: usize) -> anyhow::Result<CodeProblem> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (value, where_) = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => (v, path.display().to_string()),
        Err(_) => {
            let l = text
                .lines()
                .nth(line.saturating_sub(1))
                .with_context(|| format!("{} has no line {line}", path.display()))?;
            let v = serde_json::from_str(l)
                .with_context(|| format!("{}:{line}: not a JSON object", path.display()))?;
            (v, format!("{}:{line}", path.display()))
        }
    };
    CodeProblem::from_json(&value).with_context(|| where_)
}

fn read_solution(path: &Path) -> anyhow::Result<Solution> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match ext {
        "cpp" | "cc" | "cxx" => Solution {
            language: Language::Cpp,
            source: text,
        },
        "py" => Solution {
            language: Language::Python,
            source: text,
        },
        _ => Solution::from_completion(&text),
    })
}

fn code(args: CodeArgs) -> anyhow::Result<()> {
    let problem = read_problem(&args.problem, args.line)?;
    let solution = match (&args.solution, args.reference) {
        (_, true) => Solution {
            language: Language::Python,
            source: problem
                .reference_solution
                .clone()
                .with_context(|| format!("problem {} has no reference solution", problem.id))?,
        },
        (Some(p), false) => read_solution(p)?,
        (None, false) => bail!("give --solution FILE or --reference"),
    };
    let labels = if !args.tiers.is_empty() {
        args.tiers.clone()
    } else {
        problem
            .tiers
            .clone()
            .unwrap_or_else(|| vec![0; problem.tests.len()])
    };
    if labels.len() != problem.tests.len() {
        bail!(
            "--tiers has {} labels but problem {} has {} tests",
            labels.len(),
            problem.id,
            problem.tests.len()
        );
    }
    let layout = TierLayout::from_labels(&labels)?;
    let config = SandboxConfig::default();
    eprintln!("sandbox isolation: {:?}", Isolation::detect(&config.bwrap));
    let judge = Judge::new(config)?;
    let report = judge.judge(&problem, &solution)?;
    if let Some(c) = report
        .compile_output
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        println!("compiler output:\n{c}");
    }
    println!(
        "problem {} — {} tests, judged in {:.2}s",
        problem.id,
        report.tests.len(),
        report.wall.as_secs_f64()
    );
    println!(
        "{:>5}  {:>4}  {:<14} {:>9}",
        "test", "tier", "verdict", "wall ms"
    );
    for (i, t) in report.tests.iter().enumerate() {
        let verdict = serde_json::to_value(t.verdict)?
            .as_str()
            .unwrap_or("?")
            .to_string();
        println!(
            "{:>5}  {:>4}  {:<14} {:>9.1}",
            i,
            labels[i],
            verdict,
            t.wall.as_secs_f64() * 1e3
        );
        if t.verdict != crate::code::Verdict::Passed && !t.stderr_tail.trim().is_empty() {
            let last = t.stderr_tail.trim().lines().last().unwrap_or("");
            println!("         stderr: {last}");
        }
    }
    let r = layout.rewards(&report.passed());
    println!(
        "rewards: strict {:.4}  soft {:.4}  pass fraction {:.4}  all-or-nothing {:.0}",
        r.strict, r.soft, r.pass_fraction, r.all_or_nothing
    );
    println!("tier scores: {:?}", layout.scores());
    Ok(())
}
