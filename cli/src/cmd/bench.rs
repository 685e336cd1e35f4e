//! `crucible bench …`: benchmarks that print their figures as a JSON last line.

/// Benchmark subcommands.
#[derive(clap::Subcommand)]
pub enum Command {}

/// Runs the chosen benchmark.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {}
}
