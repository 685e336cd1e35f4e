//! `crucible leaderboard`: the team leaderboard as a terminal table.

use crate::cmd::api::ServerArgs;
use anyhow::Result;
use crucible_types::LeaderboardRow;

/// Arguments of `crucible leaderboard`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only this team (id).
    #[arg(long)]
    pub team: Option<uuid::Uuid>,
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// Runs the subcommand.
pub fn run(a: Args) -> Result<()> {
    let rows: Vec<LeaderboardRow> = a.server.client().leaderboard(a.team)?;
    println!(
        "{:<28}  {:<14}  {:>7}  {:>15}  {:>5}  {:>8}  {:<4}  flags",
        "model", "benchmark", "pass@1", "95% CI", "n", "problems", "T"
    );
    for r in rows {
        let ci = format!("[{}, {}]", pct(r.ci_low), pct(r.ci_high));
        let flag = if r.contaminated { "CONTAMINATED" } else { "" };
        println!(
            "{:<28}  {:<14}  {:>7}  {:>15}  {:>5}  {:>8}  {:<4}  {flag}",
            r.model_name,
            r.benchmark,
            pct(Some(r.score)),
            ci,
            r.n_samples,
            r.problems,
            r.sampling.temperature
        );
    }
    Ok(())
}
