//! The collection lock: of the processes that share one database, one collects at a time.
//! On PostgreSQL it is a session-level advisory lock, on a SQLite file an OS lock on a file
//! beside the database, and on an in-memory database (one process) a mutex. The first two
//! free themselves when their holder dies: its connection or file descriptor goes with it.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{AnyConnection, Connection};

use super::{Database, DbError};

/// The advisory lock's key: "aardvark" in ASCII.
const ADVISORY_KEY: i64 = 0x6161_7264_7661_726b;

/// How the lock is taken on a database (chosen from its target at connection).
#[derive(Debug, Clone)]
pub(crate) enum LockMethod {
    Advisory,
    /// The file whose OS lock is the lock.
    File(PathBuf),
    InProcess(Arc<tokio::sync::Mutex<()>>),
}

impl LockMethod {
    /// The lock file of a SQLite database file.
    pub(crate) fn beside(database: &std::path::Path) -> Self {
        let mut name = database.as_os_str().to_owned();
        name.push("-collect.lock");
        Self::File(name.into())
    }
}

/// One process's hold on the collection lock, or its means of asking for it.
pub struct CollectionLock {
    method: LockMethod,
    /// PostgreSQL: the connection the lock is (or will be) held by, kept out of the pool.
    connection: Option<AnyConnection>,
    /// PostgreSQL: whether `connection` holds the lock.
    advisory_held: bool,
    file: Option<std::fs::File>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot use the lock file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CollectionLock {
    /// A lock on `db`, not yet held.
    pub fn new(db: &Database) -> Self {
        Self {
            method: db.lock_method.clone(),
            connection: None,
            advisory_held: false,
            file: None,
            guard: None,
        }
    }

    /// Whether this process holds the lock.
    pub fn is_held(&self) -> bool {
        self.advisory_held || self.file.is_some() || self.guard.is_some()
    }

    /// Takes the lock if no other process holds it; `false` when one does.
    pub async fn try_acquire(&mut self, db: &Database) -> Result<bool, LockError> {
        if self.is_held() {
            return Ok(true);
        }
        match &self.method {
            LockMethod::Advisory => {
                let connection = match self.connection.as_mut() {
                    Some(connection) => connection,
                    None => self
                        .connection
                        .insert(db.pool().acquire().await.map_err(DbError::from)?.detach()),
                };
                match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                    .bind(ADVISORY_KEY)
                    .fetch_one(&mut *connection)
                    .await
                {
                    Ok(taken) => {
                        self.advisory_held = taken;
                        Ok(taken)
                    }
                    Err(err) => {
                        // A broken connection is replaced on the next try.
                        self.connection = None;
                        Err(DbError::from(err).into())
                    }
                }
            }
            LockMethod::File(path) => {
                let file_error = |source| LockError::File {
                    path: path.clone(),
                    source,
                };
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(file_error)?;
                match file.try_lock() {
                    Ok(()) => {
                        self.file = Some(file);
                        Ok(true)
                    }
                    Err(std::fs::TryLockError::WouldBlock) => Ok(false),
                    Err(std::fs::TryLockError::Error(source)) => Err(file_error(source)),
                }
            }
            LockMethod::InProcess(mutex) => match mutex.clone().try_lock_owned() {
                Ok(guard) => {
                    self.guard = Some(guard);
                    Ok(true)
                }
                Err(_) => Ok(false),
            },
        }
    }

    /// Frees the lock if this process holds it. On PostgreSQL a failed unlock closes the
    /// connection, which frees it as well.
    pub async fn release(&mut self) {
        if self.advisory_held {
            self.advisory_held = false;
            if let Some(connection) = self.connection.as_mut() {
                let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                    .bind(ADVISORY_KEY)
                    .fetch_one(&mut *connection)
                    .await;
                if unlocked.is_err() {
                    if let Some(connection) = self.connection.take() {
                        let _ = connection.close().await;
                    }
                }
            }
        }
        self.file = None; // closing the descriptor frees its lock
        self.guard = None;
    }
}
