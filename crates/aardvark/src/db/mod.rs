//! Storage: one SQL database (SQLite or PostgreSQL) holding upstream Aardvark's two tables,
//! reached through sqlx's `Any` driver so that every query is written once. Owns connection
//! set-up, migrations and the dialect differences; `write`, `read` and `rendered` hold the
//! queries.

pub mod read;
pub mod rendered;
pub mod runs;
pub mod uri;
pub mod write;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;
use sqlx::{Connection, Executor};

pub use uri::DatabaseTarget;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Every table this program creates, children first (the order `drop-db` uses).
const TABLES: &[&str] = &[
    "aardvark_run_failures",
    "aardvark_run_accounts",
    "aardvark_runs",
    "aardvark_principal_version",
    "aardvark_rendered_services",
    "advisor_data",
    "aws_iam_object",
    "_sqlx_migrations",
];

/// What a file path must escape to stand in a `sqlite://` URL (sqlx decodes it again).
const SQLITE_PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'%')
    .add(b'?')
    .add(b'#')
    .add(b' ');

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Uri(#[from] uri::UriError),
    #[error("cannot open database {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database schema is missing or out of date; run `aardvark create-db` first")]
    NotMigrated,
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl DbError {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection pool plus the dialect it speaks.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    /// The principals' ids and ARNs, kept in memory for the read path.
    directory: std::sync::Arc<read::DirectoryCache>,
}

impl Database {
    /// Opens (creating a SQLite file if needed) the database a SQLAlchemy-style URI names.
    pub async fn connect(uri: &str) -> Result<Self, DbError> {
        let target = DatabaseTarget::parse(uri)?;
        // SQLite serves reads from a few connections as fast as from many (one writer at a
        // time, two cores here), and each connection holds a page cache of its own.
        let connections = if target.is_sqlite() { 4 } else { 10 };
        Self::connect_target(&target, connections).await
    }

    pub async fn connect_target(
        target: &DatabaseTarget,
        max_connections: u32,
    ) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (url, dialect, options) = match target {
            DatabaseTarget::SqliteFile(path) => {
                let encoded = percent_encoding::percent_encode(
                    path.as_os_str().as_encoded_bytes(),
                    SQLITE_PATH_ESCAPES,
                );
                (
                    format!("sqlite://{encoded}?mode=rwc"),
                    Dialect::Sqlite,
                    AnyPoolOptions::new().max_connections(max_connections),
                )
            }
            // Each connection to `:memory:` is its own database: keep exactly one, forever.
            DatabaseTarget::SqliteMemory => (
                "sqlite::memory:".to_owned(),
                Dialect::Sqlite,
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
            ),
            DatabaseTarget::Postgres(url) => (
                url.clone(),
                Dialect::Postgres,
                AnyPoolOptions::new().max_connections(max_connections),
            ),
        };
        // sqlx pings a connection before lending it (and again when it comes back). For
        // SQLite that is a round trip to the connection's own thread, which cannot find it
        // broken, and perf put such hand-offs at a quarter of a page's time. A PostgreSQL
        // connection does break when its server restarts: that ping stays.
        let options = options
            .test_before_acquire(dialect == Dialect::Postgres)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers go on while a writer writes; NORMAL sync is durable
                        // in WAL mode; the busy timeout turns lock contention into waiting.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute(
                            format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis())
                                .as_str(),
                        )
                        .await?;
                    } else {
                        conn.execute("SET TIME ZONE 'UTC'").await?;
                        // Every statement of ours finds rows by key. While a collection fills a
                        // new database, the planner's statistics (and the plans it cached with
                        // them) still describe nearly empty tables and choose whole-table
                        // scans: measured at 130 to 340 ms a statement after 30,000
                        // principals. Indexes it has, it now uses.
                        conn.execute("SET enable_seqscan = off").await?;
                    }
                    Ok(())
                })
            });
        let connect_error = |source| DbError::Connect {
            target: uri::redact_password(&url),
            source,
        };
        // One plain attempt first: the pool retries refused connections until its acquire
        // timeout, and an unreachable database should be reported at once.
        if dialect == Dialect::Postgres {
            sqlx::AnyConnection::connect(&url)
                .await
                .map_err(connect_error)?
                .close()
                .await
                .map_err(connect_error)?;
        }
        let pool = options.connect(&url).await.map_err(connect_error)?;
        Ok(Self {
            pool,
            dialect,
            directory: Default::default(),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Creates the schema, or brings an existing one (ours or upstream's) up to date.
    /// Idempotent, and safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), DbError> {
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Whether every migration this build knows has been applied.
    pub async fn is_migrated(&self) -> Result<bool, DbError> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await
            {
                Ok(applied) => applied,
                Err(sqlx::Error::Database(_)) => return Ok(false), // no migrations table yet
                Err(err) => return Err(err.into()),
            };
        Ok(self
            .migrator()
            .iter()
            .all(|migration| applied.contains(&migration.version)))
    }

    /// Refreshes the query planner's statistics, so that plans stay right as tables grow
    /// (run after each collection; cheap on both databases).
    pub async fn optimize(&self) -> Result<(), DbError> {
        let statement = match self.dialect {
            Dialect::Sqlite => "PRAGMA optimize",
            Dialect::Postgres => "ANALYZE aws_iam_object, advisor_data",
        };
        self.pool.execute(statement).await?;
        Ok(())
    }

    /// Drops every table this program created, with the data in them.
    pub async fn drop_all(&self) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        for table in TABLES {
            tx.execute(format!("DROP TABLE IF EXISTS {table}").as_str())
                .await?;
        }
        if self.dialect == Dialect::Postgres {
            for function in [
                "aardvark_bump_principal_version()",
                "aardvark_rendered_services_stale()",
            ] {
                tx.execute(format!("DROP FUNCTION IF EXISTS {function}").as_str())
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// SQL for a `lastUpdated` value bound as text.
    fn timestamp_param(&self, placeholder: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => placeholder.to_owned(),
            Dialect::Postgres => format!("CAST({placeholder} AS TIMESTAMP)"),
        }
    }

    /// SQL reading `lastUpdated` as `YYYY-MM-DD HH:MM:SS[.ffffff]` text, whatever the server's
    /// date style.
    fn timestamp_text(&self, column: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("CAST({column} AS TEXT)"),
            Dialect::Postgres => format!("to_char({column}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        }
    }

    /// `rows` parenthesised lists of `columns` placeholders, for a multi-row `VALUES`, bound in
    /// order. SQLite gets anonymous `?`: it finds a numbered parameter's name by a linear search,
    /// which sqlx does for every parameter, so `$N` costs time quadratic in the parameters of
    /// a statement (measured: a quarter of the write path's time at 360 parameters).
    fn values_placeholders(&self, rows: usize, columns: usize) -> String {
        let row = |at: usize| {
            let params: Vec<String> = (1..=columns)
                .map(|column| match self.dialect {
                    Dialect::Sqlite => "?".to_owned(),
                    Dialect::Postgres => format!("${}", at * columns + column),
                })
                .collect();
            format!("({})", params.join(", "))
        };
        (0..rows).map(row).collect::<Vec<_>>().join(", ")
    }

    /// SQL for "`expr` is one of `ids`", with the one parameter to bind at `placeholder`:
    /// a JSON array read by `json_each` in SQLite, an `integer[]` in PostgreSQL (which its
    /// planner can use indexes with). A list is one parameter whatever its length.
    fn among_ids(&self, expr: &str, placeholder: &str, ids: &[i64]) -> (String, String) {
        let joined = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        match self.dialect {
            Dialect::Sqlite => (
                format!("{expr} IN (SELECT value FROM json_each({placeholder}))"),
                format!("[{joined}]"),
            ),
            Dialect::Postgres => (
                format!("{expr} = ANY(CAST({placeholder} AS integer[]))"),
                format!("{{{joined}}}"),
            ),
        }
    }
}

/// The current time as upstream stores `lastUpdated` (UTC, microseconds).
pub fn now_timestamp() -> String {
    format_timestamp(chrono::Utc::now().naive_utc())
}

pub fn format_timestamp(time: chrono::NaiveDateTime) -> String {
    time.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}
