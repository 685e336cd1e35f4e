//! `crucible up`.

/// Arguments of `crucible up`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("crucible up is being built")
}
