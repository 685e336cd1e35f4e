//! `crucible bench …`: benchmarks that print their figures as a JSON last line.

use crate::cmd::bench_tracking;

/// Benchmark subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Log 100,000 points as 100 batches of 1000 over loopback, read them back, report server RSS.
    Tracking(bench_tracking::Args),
    /// Server time of every dashboard page with 10,000 runs and a 1,000 × 12 leaderboard.
    Dashboard(super::bench_dashboard::Args),
    /// Decode tokens/s of the MiMo model on the CPU, against transformers on the same weights.
    Decode(super::bench_decode::Args),
    /// Verdicts per second of the math verifier (vs HF math-verify) and of the code judge.
    Verify(super::bench_verify::Args),
    /// Training tokens/s of the small model on the CPU, against its inference forward and torch.
    Train(super::bench_train::Args),
    /// An eval's generation with continuous batching, against lockstep batches.
    Batching(super::bench_batching::Args),
}

/// Runs the chosen benchmark.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Tracking(args) => bench_tracking::run(args),
        Command::Dashboard(args) => super::bench_dashboard::run(args),
        Command::Decode(args) => super::bench_decode::run(args),
        Command::Verify(args) => super::bench_verify::run(args),
        Command::Train(args) => super::bench_train::run(args),
        Command::Batching(args) => super::bench_batching::run(args),
    }
}
