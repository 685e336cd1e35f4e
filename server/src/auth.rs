//! Bearer-token authentication. Tokens belong to a team; only their SHA-256 is stored.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Every token starts with this, so leaked tokens are easy to grep for.
pub const TOKEN_PREFIX: &str = "crc_";

/// The team a request acts for, proven by its bearer token.
#[derive(Debug, Clone, Copy)]
pub struct AuthTeam {
    /// The token's team.
    pub team_id: Uuid,
}

impl AuthTeam {
    /// Refuses to act on another team's resource.
    pub fn check_owner(&self, owner: Uuid, what: &str) -> Result<(), AppError> {
        if owner == self.team_id {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "{what} belongs to another team"
            )))
        }
    }
}

/// A new random token: the prefix plus 32 random bytes in hex.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// What the database stores for a token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Pulls the token out of `Authorization: Bearer …`.
pub fn bearer(parts: &Parts) -> Result<&str, AppError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        AppError::Unauthorized("missing Authorization: Bearer <token> header".into())
    })?;
    let value = header
        .to_str()
        .map_err(|_| AppError::Unauthorized("Authorization header is not valid text".into()))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthorized("Authorization header must be `Bearer <token>`".into())
        })
}

/// The team owning `token`, or `Unauthorized`. Used by the extractor and by the dashboard's form.
pub async fn team_for_token(pool: &sqlx::PgPool, token: &str) -> Result<Uuid, AppError> {
    // last_used_at is refreshed at most once a minute so hot paths (metric logging) stay read-only.
    let team_id: Option<Uuid> = sqlx::query_scalar(
        "WITH t AS (SELECT id, team_id, last_used_at FROM api_tokens
                    WHERE token_hash = $1 AND revoked_at IS NULL),
              touch AS (UPDATE api_tokens SET last_used_at = now() FROM t
                        WHERE api_tokens.id = t.id
                          AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'))
         SELECT team_id FROM t",
    )
    .bind(hash_token(token))
    .fetch_optional(pool)
    .await?;
    team_id.ok_or_else(|| AppError::Unauthorized("unknown or revoked token".into()))
}

impl FromRequestParts<AppState> for AuthTeam {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        team_for_token(&state.pool, token)
            .await
            .map(|team_id| AuthTeam { team_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hash_to_32_bytes() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&a).len(), 32);
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
