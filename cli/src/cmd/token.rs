//! `crucible token`.

/// Token subcommands.
#[derive(clap::Subcommand)]
pub enum Command {}

/// Runs the subcommand.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {}
}
