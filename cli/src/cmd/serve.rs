//! `crucible serve`: the REST server.

use crate::cmd::db::DbArgs;
use anyhow::{Context, Result};

/// Arguments of `crucible serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "CRUCIBLE_BIND")]
    pub bind: String,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Connects to Postgres (migrating it), then serves until stopped.
pub async fn serve(args: &Args) -> Result<()> {
    let url = args.db.resolve().await?;
    let pool = crucible_server::connect(&url)
        .await
        .context("cannot connect to Postgres or migrate it")?;
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "Crucible server listening");
    println!("Crucible API on http://{addr}/api/v1 (OpenAPI: http://{addr}/api/v1/openapi.json)");
    crucible_server::serve(listener, pool)
        .await
        .context("server stopped")
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(serve(&args))
}
