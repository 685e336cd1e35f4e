//! `crucible`: the one binary that runs the server, workers, generation, verification and benchmarks.

mod cmd;

use clap::{Parser, Subcommand};

/// Top-level command line.
#[derive(Parser)]
#[command(
    name = "crucible",
    version,
    about = "Train and evaluate reasoning LLMs the MiMo way"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start Crucible on this machine: Postgres (found, or a cluster of its own kept across restarts), the server with the dashboard, a local worker and the shipped model; prints a sign-in link.
    Up(cmd::up::Args),
    /// Run the server alone: REST API, MLflow-compatible API and dashboard (no worker).
    Serve(cmd::serve::Args),
    /// Serve a model over the OpenAI API (completions, chat, tokenize, metrics) for the openai client, lm-eval and chat UIs.
    ServeModel(cmd::serve_model::Args),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(cmd::token::Command),
    /// Generate text from an HF-format MiMo/Qwen2 checkpoint, streaming it to stdout.
    Generate(cmd::generate::Args),
    /// Run a verifier by hand (math answer, code judge) to debug a verdict.
    #[command(subcommand)]
    Verify(crucible_verify::cli::Command),
    /// Train MiMo models: the built-in small recipe, single runs, held-out figures.
    #[command(subcommand)]
    Train(cmd::train::Command),
    /// Measure Crucible against its peers.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
    /// Lease jobs from a server and run them on this machine.
    Worker(cmd::worker::Args),
    /// Queue work for the workers.
    #[command(subcommand)]
    Submit(cmd::submit::Command),
    /// List the job queue.
    Jobs(cmd::jobs::Args),
    /// Show the team leaderboard.
    Leaderboard(cmd::leaderboard::Args),
    /// Compare two evals of one benchmark: paired difference with its interval, per subset.
    Compare(cmd::compare::Args),
    /// Manage datasets.
    #[command(subcommand)]
    Dataset(cmd::dataset::Command),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => cmd::up::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::ServeModel(args) => cmd::serve_model::run(args),
        Command::Token(c) => cmd::token::run(c),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Verify(c) => crucible_verify::cli::run(c),
        Command::Train(c) => cmd::train::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Submit(c) => cmd::submit::run(c),
        Command::Jobs(args) => cmd::jobs::run(args),
        Command::Leaderboard(args) => cmd::leaderboard::run(args),
        Command::Compare(args) => cmd::compare::run(args),
        Command::Dataset(c) => cmd::dataset::run(c),
    }
}
