//! `crucible serve`.

/// Arguments of `crucible serve`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("crucible serve is being built")
}
