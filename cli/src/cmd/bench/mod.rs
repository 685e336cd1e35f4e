//! `crucible bench …`: benchmarks that print their figures as a JSON last line.

mod batching;
mod dashboard;
mod decode;
mod queue;
mod rollout;
mod server;
mod serving;
mod speculative;
mod tracking;
mod train;
mod verify;

/// Benchmark subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Log 100,000 points as 100 batches of 1000 over loopback, read them back, report server RSS.
    Tracking(tracking::Args),
    /// Server time of every dashboard page with 10,000 runs and a 1,000 × 12 leaderboard.
    Dashboard(dashboard::Args),
    /// Decode tokens/s of the MiMo model on the CPU, against transformers on the same weights.
    Decode(decode::Args),
    /// Verdicts per second of the math verifier (vs HF math-verify) and of the code judge.
    Verify(verify::Args),
    /// Training tokens/s of the small model on the CPU, against its inference forward and torch.
    Train(train::Args),
    /// An eval's generation with continuous batching, against lockstep batches.
    Batching(batching::Args),
    /// RL steps without dynamic sampling, with naive (lockstep) and seamless dynamic sampling.
    Rollout(rollout::Args),
    /// Decode tokens/s with MTP speculative decoding against plain decoding, batch 1/8/64.
    Speculative(speculative::Args),
    /// TTFT, inter-token latency and tokens/s of the OpenAI server at concurrency 1/8/32, against `transformers serve`.
    Serve(serving::Args),
    /// Jobs leased per second and lease latency with 1, 4 and 16 workers leasing at once.
    Queue(queue::Args),
}

/// Runs the chosen benchmark.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Tracking(args) => tracking::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Train(args) => train::run(args),
        Command::Batching(args) => batching::run(args),
        Command::Rollout(args) => rollout::run(args),
        Command::Speculative(args) => speculative::run(args),
        Command::Queue(args) => queue::run(args),
        Command::Serve(args) => serving::run(args),
    }
}
