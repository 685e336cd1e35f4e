//! Authentication: bearer tokens for writes (and reads), a dashboard session cookie for reads
//! from a browser. Tokens belong to a team; only their SHA-256 is stored.

use crate::error::AppError;
use crate::secrets::hash_token;
use crate::state::AppState;
use crate::store::sessions;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use crucible_types::ReadScope;
use uuid::Uuid;

/// The team a request acts for, proven by its bearer token.
#[derive(Debug, Clone, Copy)]
pub struct AuthTeam {
    /// The token's team.
    pub team_id: Uuid,
}

impl AuthTeam {
    /// What the token may see: its team's objects; another team's are "not found" to writes too,
    /// so their existence does not leak.
    pub fn scope(&self) -> ReadScope {
        ReadScope::Team(self.team_id)
    }
}

/// An object a team owns, so that one visibility rule serves every kind of object.
pub trait Owned {
    /// What the object is called in a "not found" message.
    const KIND: &'static str;
    /// The owning team.
    fn owner(&self) -> Uuid;
    /// The object's id.
    fn id(&self) -> Uuid;
}

macro_rules! owned_by_team_id {
    ($($ty:ty => $kind:literal),+ $(,)?) => {$(
        impl Owned for $ty {
            const KIND: &'static str = $kind;
            fn owner(&self) -> Uuid {
                self.team_id
            }
            fn id(&self) -> Uuid {
                self.id
            }
        }
    )+};
}
owned_by_team_id!(
    crucible_types::Project => "project",
    crucible_types::Dataset => "dataset",
    crucible_types::Model => "model",
    crucible_types::Job => "job",
    crucible_types::Eval => "eval",
    crucible_types::Worker => "worker",
);

impl Owned for crate::store::runs::OwnedRun {
    const KIND: &'static str = "run";
    fn owner(&self) -> Uuid {
        self.team_id
    }
    fn id(&self) -> Uuid {
        self.run.id
    }
}

/// The visibility check on a [`ReadScope`], in the API's error type.
pub trait ScopeCheck {
    /// The object, or `NotFound` when it belongs to a team this scope does not see.
    fn visible<T: Owned>(self, object: T) -> Result<T, AppError>;
}

impl ScopeCheck for ReadScope {
    fn visible<T: Owned>(self, object: T) -> Result<T, AppError> {
        if self.sees(object.owner()) {
            Ok(object)
        } else {
            Err(AppError::NotFound(format!("{} {}", T::KIND, object.id())))
        }
    }
}

/// Who a read acts for: a token's team, a dashboard session's team, or — only where the
/// deployment opened reads (`CRUCIBLE_OPEN_READS=1`) and the request carries neither — everyone.
#[derive(Debug, Clone, Copy)]
pub struct Viewer(pub ReadScope);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let team_id = team_for_token(&state.pool, bearer(parts)?).await?;
            return Ok(Viewer(ReadScope::Team(team_id)));
        }
        if let Some(secret) = session_cookie(&parts.headers) {
            let team = sessions::team(&state.pool, secret).await?;
            return Ok(Viewer(ReadScope::Team(team.id)));
        }
        if state.open_reads {
            return Ok(Viewer(ReadScope::Everyone));
        }
        Err(AppError::Unauthorized(
            "reads are private to a team: send Authorization: Bearer <token>".into(),
        ))
    }
}

/// The name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "crucible_session";

/// The dashboard session secret in the request's cookies, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
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
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            "theme=dark; crucible_session=abc ; x=1".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h), Some("abc"));
        let mut other = HeaderMap::new();
        other.append(
            COOKIE,
            "crucible_session_old=zzz; crucible_session="
                .parse()
                .unwrap(),
        );
        assert_eq!(session_cookie(&other), None);
    }
}
