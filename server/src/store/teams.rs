//! Teams and their API tokens.

use crate::error::Result;
use crate::secrets::{generate_token, hash_token};
use sqlx::PgConnection;
use uuid::Uuid;

/// The team's id, creating the team on first use.
pub async fn ensure_team(conn: &mut PgConnection, name: &str) -> Result<Uuid> {
    let id = sqlx::query_scalar(
        "INSERT INTO teams (id, name) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(name)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Creates a token for the team and returns its plaintext, which is never stored.
pub async fn create_token(conn: &mut PgConnection, team_id: Uuid, name: &str) -> Result<String> {
    let token = generate_token();
    sqlx::query(
        "INSERT INTO api_tokens (id, team_id, name, token_hash, prefix) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(team_id)
    .bind(name)
    .bind(hash_token(&token))
    .bind(&token[..12])
    .execute(conn)
    .await?;
    Ok(token)
}

/// Every team, by name (the leaderboard's team filter).
pub async fn list(pool: &sqlx::PgPool) -> Result<Vec<crucible_types::Team>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, name FROM teams ORDER BY name")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| crucible_types::Team { id, name })
        .collect())
}
