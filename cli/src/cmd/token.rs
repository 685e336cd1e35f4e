//! `crucible token`: API tokens for a team.

use crate::cmd::db::DbArgs;
use anyhow::{Context, Result};
use crucible_server::store::{sessions, teams};

/// Token subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a token for a team (creating the team if new) and print it; it is shown only once.
    Create {
        /// Team name.
        #[arg(long)]
        team: String,
        /// A label for the token (e.g. the machine or person using it).
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Creates the team if needed and a token for it; returns the plaintext token.
pub async fn create(db: &DbArgs, team: &str, name: &str) -> Result<String> {
    let url = db.resolve().await?;
    let pool = crucible_server::connect(&url)
        .await
        .context("cannot connect to Postgres")?;
    let mut tx = pool.begin().await?;
    let team_id = teams::ensure_team(&mut tx, team).await?;
    let token = teams::create_token(&mut tx, team_id, name).await?;
    tx.commit().await?;
    Ok(token)
}

/// A one-time code that signs a browser into the dashboard as `token`'s team (`crucible up`
/// prints it as a link, so a new user never pastes a token).
pub async fn sign_in_code(db: &DbArgs, token: &str) -> Result<String> {
    let url = db.resolve().await?;
    let pool = crucible_server::connect(&url)
        .await
        .context("cannot connect to Postgres")?;
    let mut conn = pool.acquire().await?;
    Ok(sessions::create_link(&mut conn, token).await?)
}

/// Runs the subcommand.
pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Create { team, name, db } => {
            if team.trim().is_empty() {
                anyhow::bail!("--team must not be blank");
            }
            let token = tokio::runtime::Runtime::new()?.block_on(create(&db, &team, &name))?;
            println!("{token}");
            Ok(())
        }
    }
}
