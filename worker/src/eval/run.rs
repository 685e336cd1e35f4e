//! Running a benchmark: generate in chunks of problems, grade every sample, hand the samples over
//! chunk by chunk, and score.
//!
//! Why chunks: the worker uploads each chunk as soon as it is graded (idempotently, keyed by
//! `(problem_idx, sample_idx)`), reports progress, and can stop between chunks when the job is
//! cancelled, without holding a whole benchmark's samples in memory or in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crucible_types::CodeReward;
use crucible_types::eval::{EvalScore, SampleRecord};
use crucible_types::sampling::SamplingParams;
use crucible_verify::code::{Judge, SandboxConfig};
use crucible_verify::math::MathConfig;
use crucible_verify::{Grade, Grader, Task, VerifierPool};

use super::EvalError;
use super::benchmark::Benchmark;
use super::generator::Generator;
use super::metrics::{Vote, maj_at_k, pass_at_k, score};
use crate::telemetry::telemetry;

/// Samples generated per chunk (problems per chunk = this / n, at least one).
const CHUNK_SAMPLES: usize = 64;

/// The outcome of an eval: how many problems were scored, and the scores.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub problems: usize,
    /// `pass@1` (= avg@n) first, then `pass@k` and `maj@k` for each k > 1 of the request.
    pub scores: Vec<EvalScore>,
}

/// Per-problem tallies kept for scoring once every sample is graded.
struct Tally {
    correct: u32,
    votes: Vec<Vote>,
}

/// Evaluates `generator` on `bench` with `n` samples per problem.
///
/// `on_samples` receives each graded chunk (an error from it ends the run); `should_stop` is
/// asked before every chunk and ends the run with [`EvalError::Stopped`]; `progress(done, total)`
/// counts problems. `ks` are the k of pass@k / maj@k (each in 1..=n; pass@1 is always reported;
/// maj@k is not reported for code, whose samples have no answer to vote on).
#[allow(clippy::too_many_arguments)] // the worker's callbacks are separate concerns
pub fn run_eval(
    bench: &Benchmark,
    generator: &mut dyn Generator,
    n: u32,
    sampling: &SamplingParams,
    ks: &[u32],
    on_samples: &mut dyn FnMut(Vec<SampleRecord>) -> Result<(), EvalError>,
    should_stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<EvalReport, EvalError> {
    let ks = checked_ks(bench, n, ks)?;
    let judge = if bench.has_code() {
        Some(Judge::new(SandboxConfig::default())?)
    } else {
        None
    };
    // Evals report the strict tier reward of code problems (MiMo's rule for scoring).
    let grader = Arc::new(Grader::new(
        MathConfig::default(),
        judge,
        CodeReward::Strict,
    ));
    let judges = thread::available_parallelism().map_or(1, |w| w.get());
    let mut pool = VerifierPool::new(judges, CHUNK_SAMPLES.max(n as usize), grader.clone())?;
    let tasks: Vec<Arc<Task>> = bench
        .problems
        .iter()
        .map(|p| Arc::new(p.task.clone()))
        .collect();
    let total = bench.problems.len() as u64;
    let per_chunk = (CHUNK_SAMPLES / n as usize).max(1);
    let mut tallies: Vec<Tally> = Vec::with_capacity(bench.problems.len());
    progress(0, total);
    for (c, chunk) in bench.problems.chunks(per_chunk).enumerate() {
        let done = tallies.len() as u64;
        if should_stop() {
            return Err(EvalError::Stopped { done, total });
        }
        let prompts: Vec<String> = chunk.iter().map(|p| p.prompt.clone()).collect();
        let completions = generator.generate(&prompts, sampling, n)?;
        if completions.len() != chunk.len() || completions.iter().any(|c| c.len() != n as usize) {
            return Err(EvalError::InvalidArgs(format!(
                "generator returned {} prompts' completions for {} prompts × {n} samples",
                completions.len(),
                chunk.len()
            )));
        }
        let first = c * per_chunk;
        let texts = completions
            .iter()
            .enumerate()
            .flat_map(|(offset, cs)| cs.iter().map(move |c| (first + offset, c.text.clone())));
        let mut grades = grade_all(&mut pool, &tasks, texts)?.into_iter();
        let mut records = Vec::with_capacity(chunk.len() * n as usize);
        for (offset, (problem, samples)) in chunk.iter().zip(completions).enumerate() {
            let problem_idx = first + offset;
            let mut tally = Tally {
                correct: 0,
                votes: Vec::with_capacity(n as usize),
            };
            for (j, completion) in samples.into_iter().enumerate() {
                let g = grades
                    .next()
                    .ok_or_else(|| EvalError::InvalidArgs("grading lost a sample".to_string()))?;
                tally.correct += u32::from(g.correct);
                tally.votes.push(Vote {
                    answer: g.vote,
                    correct: g.correct,
                });
                records.push(SampleRecord {
                    problem_idx: to_i32(problem_idx),
                    sample_idx: to_i32(j),
                    problem_id: problem.id.clone(),
                    prompt: problem.prompt.clone(),
                    completion: completion.text,
                    extracted: g.extracted,
                    verdict: g.verdict,
                    correct: g.correct,
                    reward: g.reward,
                    tokens: i32::try_from(completion.tokens).unwrap_or(i32::MAX),
                    truncated: completion.truncated,
                });
            }
            tallies.push(tally);
        }
        on_samples(records)?;
        progress(tallies.len() as u64, total);
        tracing::debug!(benchmark = %bench.name, done = tallies.len(), total, "eval chunk graded");
    }
    Ok(EvalReport {
        problems: tallies.len(),
        scores: scores(bench, &grader, &tallies, n, &ks),
    })
}

fn to_i32(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// The distinct k > 1 to report, after checking the arguments.
fn checked_ks(bench: &Benchmark, n: u32, ks: &[u32]) -> Result<Vec<u32>, EvalError> {
    if n == 0 {
        return Err(EvalError::InvalidArgs(
            "n (samples per problem) must be ≥ 1".into(),
        ));
    }
    if bench.problems.is_empty() {
        return Err(EvalError::InvalidArgs(format!(
            "benchmark {} has no problems",
            bench.name
        )));
    }
    if let Some(k) = ks.iter().find(|&&k| k == 0 || k > n) {
        return Err(EvalError::InvalidArgs(format!(
            "every k must be between 1 and n ({n}), got {k}"
        )));
    }
    let mut ks: Vec<u32> = ks.iter().copied().filter(|&k| k > 1).collect();
    ks.sort_unstable();
    ks.dedup();
    Ok(ks)
}

/// Grades `(problem, completion)` items in the pool (spread over the CPUs; code runs one
/// sandbox per test) and returns the grades in item order. A judge failure ends the eval: a score
/// must never count an infrastructure fault as a wrong answer.
fn grade_all(
    pool: &mut VerifierPool,
    tasks: &[Arc<Task>],
    items: impl Iterator<Item = (usize, String)>,
) -> Result<Vec<Grade>, EvalError> {
    // Submitting never deadlocks: the judges drain the bounded queue into an unbounded channel.
    let ids = items
        .map(|(problem, text)| pool.submit(tasks[problem].clone(), text))
        .collect::<Result<Vec<u64>, _>>()?;
    telemetry().verifier_pending(pool.pending());
    let slot: HashMap<u64, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut grades: Vec<Option<Grade>> = vec![None; ids.len()];
    let mut left = ids.len();
    while left > 0 {
        if let Some(v) = pool.recv_timeout(Duration::from_secs(1))? {
            telemetry().graded(v.queued, v.ran, pool.pending());
            let i = *slot.get(&v.id).ok_or_else(|| {
                EvalError::InvalidArgs(format!("grading returned an unknown id {}", v.id))
            })?;
            grades[i] = Some(v.grade?);
            left -= 1;
        }
    }
    Ok(grades.into_iter().flatten().collect())
}

/// pass@1, pass@k and (except for code) maj@k over the tallies.
fn scores(
    bench: &Benchmark,
    grader: &Grader,
    tallies: &[Tally],
    n: u32,
    ks: &[u32],
) -> Vec<EvalScore> {
    let per = |f: &dyn Fn(usize, &Tally) -> f64| -> Vec<f64> {
        tallies.iter().enumerate().map(|(i, t)| f(i, t)).collect()
    };
    let mut out = vec![score(
        "pass@1",
        &per(&|_, t| f64::from(t.correct) / f64::from(n)),
    )];
    for &k in ks {
        out.push(score(
            format!("pass@{k}"),
            &per(&|_, t| pass_at_k(n, t.correct, k)),
        ));
    }
    if !bench.has_code() {
        for &k in ks {
            out.push(score(
                format!("maj@{k}"),
                &per(&|i, t| {
                    let task = &bench.problems[i].task;
                    maj_at_k(&t.votes, k as usize, &|a, b| grader.same_answer(task, a, b))
                }),
            ));
        }
    }
    out
}
