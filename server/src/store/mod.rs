//! Postgres access, one module per aggregate. Functions take an executor so handlers decide the
//! transaction boundaries; every multi-statement write runs inside one transaction.

pub mod completions;
pub mod contamination;
pub mod datasets;
pub mod evals;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod projects;
pub mod runs;
pub mod sessions;
pub mod teams;
pub mod workers;

use crate::error::AppError;

/// Checks a page window: `limit` between 1 and `max`, `offset` not negative (the OpenAPI
/// document declares the same bounds on every paged listing).
pub fn check_window(limit: i64, max: i64, offset: i64) -> Result<(), AppError> {
    if !(1..=max).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    if offset < 0 {
        return Err(AppError::invalid("offset", "must not be negative"));
    }
    Ok(())
}

/// Maps a unique-constraint violation to a 409 naming `field`; other errors pass through.
pub fn on_unique(field: &str, message: impl Into<String>) -> impl FnOnce(sqlx::Error) -> AppError {
    let (field, message) = (field.to_string(), message.into());
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppError::Conflict {
            field: Some(field),
            message,
        },
        _ => AppError::Db(e),
    }
}
