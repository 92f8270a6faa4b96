//! Storage's one error type, and what callers ask of it (is it worth retrying).

use super::uri::UriError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Uri(#[from] UriError),
    #[error("database {target} is unreachable: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database schema is missing or out of date; run `aardvark create-db` first")]
    NotMigrated,
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl DbError {
    /// Stored text that does not read as what it should be.
    pub fn undecodable(problem: String) -> Self {
        DbError::Sql(sqlx::Error::Decode(problem.into()))
    }

    /// Whether retrying the same statement may succeed (lock contention, lost connection).
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sql(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => true,
            DbError::Sql(sqlx::Error::Database(err)) => {
                let message = err.message();
                message.contains("database is locked")
                    || message.contains("deadlock detected")
                    || message.contains("could not serialize")
            }
            _ => false,
        }
    }
}
