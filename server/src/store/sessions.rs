//! Dashboard sessions and one-time sign-in links, both made from an API token: a browser never
//! holds the token itself, and revoking the token ends every session made from it.

use crate::error::{AppError, Result};
use crate::secrets::{hash_token, random_secret};
use crucible_types::Team;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// How long a dashboard session lasts after sign-in.
pub const SESSION_DAYS: i32 = 7;

/// How long a printed sign-in link can be used (once).
pub const LINK_HOURS: i32 = 24;

/// The live token `token` names, or `Unauthorized`.
async fn token_id(conn: &mut PgConnection, token: &str) -> Result<Uuid> {
    sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(hash_token(token))
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| AppError::Unauthorized("unknown or revoked token".into()))
}

/// Stores the hash of a new secret for `token_id` with `insert` (which binds the hash, the token id
/// and the lifetime, in that order) and returns the secret.
async fn new_secret(
    conn: &mut PgConnection,
    insert: &'static str,
    token_id: Uuid,
    lifetime: i32,
) -> Result<String> {
    let secret = random_secret();
    sqlx::query(insert)
        .bind(hash_token(&secret))
        .bind(token_id)
        .bind(lifetime)
        .execute(conn)
        .await?;
    Ok(secret)
}

/// Opens a session for `token_id` and returns the cookie's secret.
async fn open_for(conn: &mut PgConnection, token_id: Uuid) -> Result<String> {
    let insert = "INSERT INTO sessions (secret_hash, token_id, expires_at)
                  VALUES ($1, $2, now() + make_interval(days => $3))";
    new_secret(conn, insert, token_id, SESSION_DAYS).await
}

/// Signs in with an API token pasted into the sign-in page: the new session's secret.
pub async fn sign_in(pool: &PgPool, token: &str) -> Result<String> {
    let mut tx = pool.begin().await?;
    let id = token_id(&mut tx, token).await?;
    let secret = open_for(&mut tx, id).await?;
    tx.commit().await?;
    Ok(secret)
}

/// A one-time sign-in code for `token` (what `crucible up` prints as a URL).
pub async fn create_link(conn: &mut PgConnection, token: &str) -> Result<String> {
    let id = token_id(conn, token).await?;
    let insert = "INSERT INTO sign_in_links (code_hash, token_id, expires_at)
                  VALUES ($1, $2, now() + make_interval(hours => $3))";
    new_secret(conn, insert, id, LINK_HOURS).await
}

/// Spends a sign-in code (once, before it expires) on a new session: the session's secret.
pub async fn redeem_link(pool: &PgPool, code: &str) -> Result<String> {
    let mut tx = pool.begin().await?;
    let token_id: Uuid = sqlx::query_scalar(
        "UPDATE sign_in_links l SET used_at = now() FROM api_tokens t
         WHERE l.code_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()
           AND t.id = l.token_id AND t.revoked_at IS NULL
         RETURNING l.token_id",
    )
    .bind(hash_token(code))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        AppError::Unauthorized("this sign-in link was already used or has expired".into())
    })?;
    let secret = open_for(&mut tx, token_id).await?;
    tx.commit().await?;
    Ok(secret)
}

/// The team a live session belongs to, or `Unauthorized`.
pub async fn team(pool: &PgPool, secret: &str) -> Result<Team> {
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT tm.id, tm.name FROM sessions s
         JOIN api_tokens t ON t.id = s.token_id AND t.revoked_at IS NULL
         JOIN teams tm ON tm.id = t.team_id
         WHERE s.secret_hash = $1 AND s.expires_at > now()",
    )
    .bind(hash_token(secret))
    .fetch_optional(pool)
    .await?;
    row.map(|(id, name)| Team { id, name })
        .ok_or_else(|| AppError::Unauthorized("the session has ended: sign in again".into()))
}

/// Ends a session (sign-out); ending an unknown one is not an error.
pub async fn close(pool: &PgPool, secret: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE secret_hash = $1")
        .bind(hash_token(secret))
        .execute(pool)
        .await?;
    Ok(())
}
