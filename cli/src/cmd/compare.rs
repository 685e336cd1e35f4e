//! `crucible compare`: two finished evals of the same benchmark, problem by problem — pass@1 of
//! each, and the paired difference with its bootstrap interval, overall and per subset.

use anyhow::{Context, Result, bail};
use crucible_types::eval::{Eval, EvalScore, EvalStatus, ProblemSamples};
use crucible_types::model::Model;
use crucible_worker::client::ServerClient;
use crucible_worker::eval::compare::{ComparisonRow, ProblemResult, compare};
use uuid::Uuid;

use crate::cmd::api::ServerArgs;

/// Arguments of `crucible compare`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The baseline eval (A).
    pub a: Uuid,
    /// The eval compared with it (B); the difference is B − A.
    pub b: Uuid,
}

/// Problems fetched per request (the samples endpoint's maximum).
const PAGE: usize = 200;

/// An eval's metadata, its model's name and its per-problem results.
fn fetch(client: &ServerClient, id: Uuid) -> Result<(Eval, String, Vec<ProblemResult>)> {
    let eval: Eval = client.eval(id)?;
    if eval.status != EvalStatus::Finished {
        bail!("eval {id} is {}: only finished evals compare", eval.status);
    }
    let model: Model = client.model(eval.model_id)?;
    let mut results = Vec::new();
    loop {
        let page: Vec<ProblemSamples> = client.eval_samples(id, results.len(), PAGE)?;
        let last = page.len() < PAGE;
        results.extend(page.into_iter().map(|p| ProblemResult {
            id: p.problem_id,
            correct: u32::try_from(p.correct).unwrap_or(0),
            samples: u32::try_from(p.samples.len()).unwrap_or(u32::MAX),
        }));
        if last {
            break;
        }
    }
    Ok((eval, model.name, results))
}

fn score(s: &EvalScore) -> String {
    match (s.ci_low, s.ci_high) {
        (Some(lo), Some(hi)) => format!("{:.3} [{lo:.3}, {hi:.3}]", s.value),
        _ => format!("{:.3}", s.value),
    }
}

fn print_row(r: &ComparisonRow) {
    let diff = &r.difference;
    let verdict = match (diff.ci_low, diff.ci_high) {
        (Some(lo), _) if lo > 0.0 => "B better",
        (_, Some(hi)) if hi < 0.0 => "A better",
        _ => "no clear difference",
    };
    println!(
        "{:<18} {:>8}  {:<24} {:<24} {:+.3} [{:+.3}, {:+.3}]  {verdict}",
        r.subset,
        r.a.n,
        score(&r.a),
        score(&r.b),
        diff.value,
        diff.ci_low.unwrap_or(f64::NAN),
        diff.ci_high.unwrap_or(f64::NAN),
    );
}

/// Runs the subcommand.
pub fn run(a: Args) -> Result<()> {
    let client = a.server.client();
    let (eval_a, model_a, results_a) = fetch(&client, a.a)?;
    let (eval_b, model_b, results_b) = fetch(&client, a.b)?;
    if eval_a.benchmark != eval_b.benchmark {
        bail!(
            "eval {} is on {} and eval {} on {}: compare evals of one benchmark",
            a.a,
            eval_a.benchmark,
            a.b,
            eval_b.benchmark
        );
    }
    let rows =
        compare(&results_a, &results_b).with_context(|| format!("evals {} and {}", a.a, a.b))?;
    for (label, eval, model) in [("A", &eval_a, &model_a), ("B", &eval_b, &model_b)] {
        println!(
            "{label}: {model} on {} (eval {}, n = {}, T = {}, top-p = {})",
            eval.benchmark, eval.id, eval.n_samples, eval.sampling.temperature, eval.sampling.top_p
        );
    }
    if eval_a.n_samples != eval_b.n_samples
        || eval_a.sampling.temperature != eval_b.sampling.temperature
    {
        println!("note: the evals sampled differently; the difference includes that");
    }
    println!(
        "\npass@1 (avg@n) with 95% bootstrap intervals over problems; the difference B − A is paired\n"
    );
    println!(
        "{:<18} {:>8}  {:<24} {:<24} B − A",
        "subset", "problems", "A", "B"
    );
    for r in &rows {
        print_row(r);
    }
    Ok(())
}
