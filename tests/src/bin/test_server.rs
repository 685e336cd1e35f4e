//! `crucible-test-server DATABASE_URL ADDR`: the real server (migrations, API, dashboard) as a
//! process of its own, without the CLI's candle build, so crash tests can SIGKILL it and start
//! it again on the same address.

use anyhow::{Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(addr)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: crucible-test-server DATABASE_URL ADDR");
    };
    let pool = crucible_server::connect(&url)
        .await
        .context("cannot connect to Postgres or migrate it")?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    crucible_server::serve(listener, pool)
        .await
        .context("server stopped")
}
