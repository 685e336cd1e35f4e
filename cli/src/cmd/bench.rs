//! `crucible bench …`: benchmarks that print their figures as a JSON last line.

/// Benchmark subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Decode tokens/s of the MiMo model on the CPU, against transformers on the same weights.
    Decode(super::bench_decode::Args),
}

/// Runs the chosen benchmark.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Decode(args) => super::bench_decode::run(args),
    }
}
