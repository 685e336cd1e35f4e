//! `crucible-verify`: the verifiers' command line (the same as `crucible verify`) in a binary
//! that does not link the model, for machines that only grade.

use clap::Parser;

/// Runs a verifier by hand, to debug a verdict.
#[derive(Parser)]
#[command(name = "crucible-verify", version, about)]
struct Cli {
    #[command(subcommand)]
    command: crucible_verify::cli::Command,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    crucible_verify::cli::run(Cli::parse().command)
}
