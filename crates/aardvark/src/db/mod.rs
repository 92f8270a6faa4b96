//! Storage: one SQL database (SQLite or PostgreSQL) holding upstream Aardvark's two tables,
//! reached through sqlx's `Any` driver so that every query is written once. Owns connection
//! set-up, migrations and the dialect differences; `write`, `read` and `rendered` hold the
//! queries.

mod dialect;
mod directory;
mod error;
pub mod findings;
pub mod history;
pub mod identity;
pub mod lock;
pub mod read;
pub mod recommendations;
pub mod rendered;
pub mod runs;
pub mod uri;
pub mod usage;
pub mod vocabulary;
pub mod work;
pub mod write;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::{Connection, Executor};

pub use dialect::Dialect;
pub use error::DbError;
pub use read::Reader;
pub use rendered::Rendering;
pub use uri::DatabaseTarget;

/// Every table this program creates, children first (the order `drop-db` uses).
const TABLES: &[&str] = &[
    "aardvark_recommendation_inputs",
    "aardvark_findings_applied",
    "aardvark_recommendations",
    "aardvark_finding_evaluations",
    "aardvark_finding_history",
    "aardvark_findings",
    "aardvark_findings_rules",
    "aardvark_access_keys",
    "aardvark_credentials",
    "aardvark_managed_policies",
    "aardvark_policy_documents",
    "aardvark_identities",
    "aardvark_run_account_parts",
    "aardvark_actions",
    "aardvark_service_regions",
    "aardvark_principals",
    "aardvark_history",
    "aardvark_run_work",
    "aardvark_run_principals",
    "aardvark_run_vanished",
    "aardvark_run_failures",
    "aardvark_run_accounts",
    "aardvark_runs",
    "aardvark_principal_version",
    "aardvark_rendered_digests",
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

/// What [`Database::migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The migrations applied, as `0003 run records`; empty when the schema was up to date.
    pub applied: Vec<String>,
    /// The schema was created: the database held neither ours nor upstream's.
    pub created: bool,
    /// The database was upstream Aardvark's (its tables, none of our migrations).
    pub from_upstream: bool,
    /// Duplicate (principal, service) rows of upstream's merged into one.
    pub merged_rows: i64,
}

/// A connection pool, the dialect it speaks, and how the API's answers are rendered for
/// keeping. Cheap to clone; the read path's cache is a [`read::Reader`]'s.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    rendering: Rendering,
    /// How this database's collection lock is taken.
    lock_method: lock::LockMethod,
    /// The collection writers' own connection, on a SQLite file ([`Database::begin_write`]).
    writer: Option<AnyPool>,
    /// Turns for this process's collection writers ([`Database::begin_write`]); shared by
    /// clones.
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// `options` with what every connection of ours needs: the dialect's session settings, then
/// `extra` statements. sqlx pings a connection before lending it (and again when it comes
/// back) where that can find it broken.
fn set_up(
    options: AnyPoolOptions,
    dialect: Dialect,
    extra: &'static [&'static str],
) -> AnyPoolOptions {
    options
        .test_before_acquire(dialect.pings_before_lending())
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                for statement in dialect.session_setup() {
                    conn.execute(statement.as_str()).await?;
                }
                for statement in extra {
                    conn.execute(*statement).await?;
                }
                Ok(())
            })
        })
}

/// The URL, dialect and pool options of `target`.
fn pool_options(
    target: &DatabaseTarget,
    max_connections: u32,
) -> (String, Dialect, AnyPoolOptions) {
    match target {
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
    }
}

/// The collection writers' own connection ([`Database::begin_write`]), on a SQLite file: one
/// connection, kept, so that its page cache outlives its transactions.
fn writer_options(target: &DatabaseTarget, dialect: Dialect) -> Option<AnyPoolOptions> {
    match target {
        DatabaseTarget::SqliteFile(_) => Some(set_up(
            AnyPoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            dialect,
            dialect.writer_setup(),
        )),
        DatabaseTarget::SqliteMemory | DatabaseTarget::Postgres(_) => None,
    }
}

impl Database {
    /// Opens (creating a SQLite file if needed) the database a SQLAlchemy-style URI names.
    /// Principals it stores are rendered for the API by `rendering` (`api::wire::RENDERING`).
    pub async fn connect(uri: &str, rendering: Rendering) -> Result<Self, DbError> {
        let target = DatabaseTarget::parse(uri)?;
        // SQLite serves reads from a few connections as fast as from many (one writer at a
        // time, two cores here), and each connection holds a page cache of its own.
        let connections = if target.is_sqlite() { 4 } else { 10 };
        Self::connect_target(&target, connections, rendering).await
    }

    pub async fn connect_target(
        target: &DatabaseTarget,
        max_connections: u32,
        rendering: Rendering,
    ) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let lock_method = match target {
            DatabaseTarget::SqliteFile(path) => lock::LockMethod::beside(path),
            DatabaseTarget::SqliteMemory => lock::LockMethod::InProcess(Default::default()),
            DatabaseTarget::Postgres(_) => lock::LockMethod::Advisory,
        };
        let (url, dialect, options) = pool_options(target, max_connections);
        let connect_error = |source| DbError::Connect {
            target: uri::redact_password(&url),
            source,
        };
        if dialect.tries_connecting_first() {
            sqlx::AnyConnection::connect(&url)
                .await
                .map_err(connect_error)?
                .close()
                .await
                .map_err(connect_error)?;
        }
        let pool = set_up(options, dialect, &[])
            .connect(&url)
            .await
            .map_err(connect_error)?;
        // Opened at the first write: most commands never write.
        let writer = writer_options(target, dialect)
            .map(|options| options.connect_lazy(&url))
            .transpose()
            .map_err(connect_error)?;
        Ok(Self {
            pool,
            writer,
            dialect,
            rendering,
            lock_method,
            write_turn: Default::default(),
        })
    }

    /// A collection writer's transaction (principals, identity details, findings'
    /// evaluations, recommendations), begun in this process's turn to write. On SQLite the
    /// writers wait here, in turn and without a deadline, rather than for a pooled connection
    /// (30 s at most) or in SQLite's busy handler (which sleeps milliseconds at a time), and
    /// write on a connection of their own ([`Dialect::writer_setup`]); on PostgreSQL, whose
    /// writers of different rows go side by side, the turn is `None`. Keep the turn until the
    /// transaction has ended.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<
        (
            Option<tokio::sync::OwnedMutexGuard<()>>,
            sqlx::Transaction<'static, sqlx::Any>,
        ),
        DbError,
    > {
        let turn = match self.dialect {
            Dialect::Sqlite => Some(self.write_turn.clone().lock_owned().await),
            Dialect::Postgres => None,
        };
        let tx = self.writer.as_ref().unwrap_or(&self.pool).begin().await?;
        Ok((turn, tx))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn rendering(&self) -> Rendering {
        self.rendering
    }

    /// Creates the schema, or brings an existing one (ours or upstream's) up to date.
    /// Idempotent, and safe to run from several processes at once. Returns what it did.
    pub async fn migrate(&self) -> Result<Migrated, DbError> {
        let applied_before = self.applied_migrations().await?;
        let pending: Vec<String> = self
            .dialect
            .migrator()
            .iter()
            .filter(|migration| !applied_before.contains(&migration.version))
            .map(|migration| format!("{:04} {}", migration.version, migration.description))
            .collect();
        // Upstream's tables without our record of migrations: upstream's own database.
        let upstream_rows = if applied_before.is_empty() {
            self.advisor_rows().await
        } else {
            None
        };
        if upstream_rows.is_some() {
            tracing::warn!("migrating upstream Aardvark's database in place: its indexes change and duplicate rows are merged (keep a backup taken before this)");
        }
        self.dialect.migrator().run(&self.pool).await?;
        let filled = self.fill_principal_details().await?;
        if filled > 0 {
            tracing::info!(
                principals = filled,
                "recorded the kind and last uses of principals stored before"
            );
        }
        // Counted again only for upstream's database: a count of every row is no work for
        // every start-up of a server.
        let merged_rows = match upstream_rows {
            Some(before) => before - self.advisor_rows().await.unwrap_or(before),
            None => 0,
        };
        Ok(Migrated {
            applied: pending,
            created: applied_before.is_empty() && upstream_rows.is_none(),
            from_upstream: upstream_rows.is_some(),
            merged_rows,
        })
    }

    /// The versions of the migrations applied so far (none on a new or upstream database).
    async fn applied_migrations(&self) -> Result<Vec<i64>, DbError> {
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
        {
            Ok(applied) => Ok(applied),
            Err(sqlx::Error::Database(_)) => Ok(Vec::new()), // no migrations table yet
            Err(err) => Err(err.into()),
        }
    }

    /// How many rows `advisor_data` holds; `None` when there is no such table.
    async fn advisor_rows(&self) -> Option<i64> {
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM advisor_data")
            .fetch_one(&self.pool)
            .await
            .ok()
    }

    /// Whether every migration this build knows has been applied.
    pub async fn is_migrated(&self) -> Result<bool, DbError> {
        let applied = self.applied_migrations().await?;
        Ok(self
            .dialect
            .migrator()
            .iter()
            .all(|migration| applied.contains(&migration.version)))
    }

    /// Refreshes the query planner's statistics, so that plans stay right as tables grow
    /// (run after each collection; cheap on both databases).
    pub async fn optimize(&self) -> Result<(), DbError> {
        self.pool.execute(self.dialect.optimize_statement()).await?;
        Ok(())
    }

    /// Drops every table this program created, with the data in them.
    pub async fn drop_all(&self) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        for table in TABLES {
            tx.execute(format!("DROP TABLE IF EXISTS {table}").as_str())
                .await?;
        }
        for function in self.dialect.functions() {
            tx.execute(format!("DROP FUNCTION IF EXISTS {function}").as_str())
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Rendering = Rendering {
        format: 1,
        render: |_, _| String::new(),
        digest: |_| None,
    };

    async fn pragma(conn: &mut sqlx::AnyConnection, name: &str) -> i64 {
        sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(conn)
            .await
            .unwrap()
    }

    async fn sqlite_file() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("sqlite:///{}", dir.path().join("a.db").display());
        let db = Database::connect(&uri, PLAIN).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn collection_writers_write_on_a_sqlite_connection_of_their_own() {
        let (_dir, db) = sqlite_file().await;
        let (turn, mut tx) = db.begin_write().await.unwrap();
        assert!(turn.is_some());
        assert_eq!(pragma(&mut tx, "cache_size").await, -8192);
        assert_eq!(pragma(&mut tx, "temp_store").await, 2, "MEMORY");
        assert_eq!(pragma(&mut tx, "wal_autocheckpoint").await, 8192);
        drop((tx, turn));
        // The other connections keep SQLite's defaults but the checkpoint's.
        let mut reader = db.pool().acquire().await.unwrap();
        assert_eq!(pragma(&mut reader, "temp_store").await, 0, "DEFAULT");
        assert_eq!(pragma(&mut reader, "cache_size").await, -2000);
        assert_eq!(pragma(&mut reader, "wal_autocheckpoint").await, 8192);
    }

    #[tokio::test]
    async fn a_write_abandoned_midway_leaves_nothing_and_the_next_writer_free() {
        let (_dir, db) = sqlite_file().await;
        db.pool()
            .execute("CREATE TABLE t (v INTEGER)")
            .await
            .unwrap();
        {
            let (_turn, mut tx) = db.begin_write().await.unwrap();
            tx.execute("INSERT INTO t VALUES (1)").await.unwrap();
        }
        // The writers' one connection comes back rolled back, not held: a deadline instead
        // of the pool's 30 s.
        let (_turn, mut tx) = tokio::time::timeout(Duration::from_secs(5), db.begin_write())
            .await
            .expect("the writers' connection came back")
            .unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(count, 0);
        tx.execute("INSERT INTO t VALUES (2)").await.unwrap();
        tx.commit().await.unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT v FROM t")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(seen, 2);
        db.close().await;
    }
}
