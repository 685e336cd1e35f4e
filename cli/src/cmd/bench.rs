//! `crucible bench …`: benchmarks that print their figures as a JSON last line.

/// Benchmark subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Verdicts per second of the math verifier (vs HF math-verify) and of the code judge.
    Verify(super::bench_verify::Args),
}

/// Runs the chosen benchmark.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Verify(args) => super::bench_verify::run(args),
    }
}
