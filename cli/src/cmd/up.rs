//! `crucible up`: everything needed to use Crucible on this machine, with nothing configured.

use crate::cmd::serve;
use anyhow::Result;

/// Arguments of `crucible up`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub serve: serve::Args,
    /// Team of the first token printed at start-up.
    #[arg(long, default_value = "default")]
    pub team: String,
}

/// Finds or starts Postgres, prints a token for the default team, and runs the server.
pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let token = crate::cmd::token::create(&args.serve.db, &args.team, "crucible up").await?;
        println!("Team {:?}: API token {token}", args.team);
        println!("  export CRUCIBLE_TOKEN={token}");
        println!(
            "  MLflow clients: MLFLOW_TRACKING_URI=http://{} MLFLOW_TRACKING_TOKEN={token}",
            args.serve.bind
        );
        serve::serve(&args.serve).await
    })
}
