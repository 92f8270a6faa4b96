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

    /// Whether retrying the same statement may succeed (lock contention, lost connection, a
    /// PostgreSQL server shutting down or starting up).
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sql(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => true,
            DbError::Sql(sqlx::Error::Database(err)) => {
                // PostgreSQL: connection exceptions (class 08), and the server going down or
                // coming up (57P01 to 57P03).
                if err.code().is_some_and(|code| {
                    code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
                }) {
                    return true;
                }
                let message = err.message();
                message.contains("database is locked")
                    || message.contains("deadlock detected")
                    || message.contains("could not serialize")
            }
            _ => false,
        }
    }
}
