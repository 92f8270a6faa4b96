//! Every difference between SQLite and PostgreSQL that the queries meet, in one place: session
//! settings, migrations, placeholders, timestamps, id lists, JSON aggregation, row locks and
//! maintenance statements. The queries in `write`, `read`, `rendered` and `runs` are written
//! once and ask [`Dialect`] for the pieces that differ.

use std::time::Duration;

use sqlx::migrate::Migrator;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// WAL pages after which a commit checkpoints (32 MB; SQLite's default is 1,000).
const SQLITE_CHECKPOINT_PAGES: u32 = 8_192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub(crate) fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Statements each new connection runs.
    pub(crate) fn session_setup(self) -> Vec<String> {
        match self {
            // WAL lets readers go on while a writer writes; NORMAL sync is durable in WAL
            // mode; the busy timeout turns lock contention into waiting.
            // A checkpoint copies every page written since the last one from the WAL into the
            // database; at SQLite's default of 1,000 pages, a collection's index pages, written
            // again by every group of principals, were copied again every few groups.
            Dialect::Sqlite => vec![
                "PRAGMA journal_mode = WAL".into(),
                "PRAGMA synchronous = NORMAL".into(),
                format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()),
                format!("PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}"),
            ],
            Dialect::Postgres => vec![
                "SET TIME ZONE 'UTC'".into(),
                // Every statement of ours finds rows by key. While a collection fills a new
                // database, the planner's statistics (and the plans it cached with them)
                // still describe nearly empty tables and choose whole-table scans: measured
                // at 130 to 340 ms a statement after 30,000 principals. Indexes it has, it
                // now uses.
                "SET enable_seqscan = off".into(),
                // JIT compilation (on by default since PostgreSQL 12) starts at an estimated
                // cost of 100,000, which the line above puts on any plan with a scan it cannot
                // avoid and a subquery's estimate reaches at a million principals: a page of
                // an account's 100 principals then spent 17 ms compiling and 57 ms in all,
                // against 1.8 ms without. Every statement of ours is short. (Through
                // `pg_settings`: servers before 11 have no such setting.)
                "SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'jit'".into(),
            ],
        }
    }

    /// Statements the collection writers' own connection runs after [`Self::session_setup`]
    /// (SQLite only: see [`Database::begin_write`](super::Database::begin_write)).
    pub(crate) fn writer_setup(self) -> &'static [&'static str] {
        match self {
            // An 8 MB page cache (SQLite's default is 2 MB), valid between the writer's
            // transactions because no other connection writes the pages they change; 16 MB
            // was no faster and held more memory in small collections. Statement journals
            // (the pages a multi-row statement changes, kept until it ends) in memory: in a
            // temporary file they were a third of the pages a collection wrote.
            Dialect::Sqlite => &["PRAGMA cache_size = -8192", "PRAGMA temp_store = MEMORY"],
            Dialect::Postgres => &[],
        }
    }

    /// Whether the pool pings a connection before lending it. For SQLite that is a round trip
    /// to the connection's own thread, which cannot find it broken, and perf put such
    /// hand-offs at a quarter of a page's time. A PostgreSQL connection does break when its
    /// server restarts: that ping stays.
    pub(crate) fn pings_before_lending(self) -> bool {
        self == Dialect::Postgres
    }

    /// Whether connecting should be tried once before the pool is built: the pool retries
    /// refused connections until its acquire timeout, and an unreachable server should be
    /// reported at once. (A SQLite file is created, never refused.)
    pub(crate) fn tries_connecting_first(self) -> bool {
        self == Dialect::Postgres
    }

    /// The statement that refreshes the planner's statistics.
    pub(crate) fn optimize_statement(self) -> &'static str {
        match self {
            Dialect::Sqlite => "PRAGMA optimize",
            Dialect::Postgres => "ANALYZE aws_iam_object, advisor_data",
        }
    }

    /// Functions the migrations created besides tables, which `drop-db` drops.
    pub(crate) fn functions(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &[],
            Dialect::Postgres => &[
                "aardvark_bump_principal_version()",
                "aardvark_rendered_services_stale()",
                "aardvark_rendered_digests_stale()",
            ],
        }
    }

    /// SQL for a `lastUpdated` value bound as text.
    pub(crate) fn timestamp_param(self, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => placeholder.to_owned(),
            Dialect::Postgres => format!("CAST({placeholder} AS TIMESTAMP)"),
        }
    }

    /// SQL reading `lastUpdated` as `YYYY-MM-DD HH:MM:SS[.ffffff]` text, whatever the server's
    /// date style.
    pub(crate) fn timestamp_text(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({column} AS TEXT)"),
            Dialect::Postgres => format!("to_char({column}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        }
    }

    /// `rows` parenthesised lists of `columns` placeholders, for a multi-row `VALUES`, bound
    /// in order. SQLite gets anonymous `?`: it finds a numbered parameter's name by a linear
    /// search, which sqlx does for every parameter, so `$N` costs time quadratic in the
    /// parameters of a statement (measured: a quarter of the write path's time at 360
    /// parameters).
    pub(crate) fn values_placeholders(self, rows: usize, columns: usize) -> String {
        self.values_placeholders_then(rows, columns, "")
    }

    /// [`Self::values_placeholders`] with `constants` (SQL, such as `, 5, NULL`) after each
    /// row's placeholders: values every row shares, written once rather than bound per row.
    pub(crate) fn values_placeholders_then(
        self,
        rows: usize,
        columns: usize,
        constants: &str,
    ) -> String {
        let row = |at: usize| {
            let params: Vec<String> = (1..=columns)
                .map(|column| match self {
                    Dialect::Sqlite => "?".to_owned(),
                    Dialect::Postgres => format!("${}", at * columns + column),
                })
                .collect();
            format!("({}{constants})", params.join(", "))
        };
        (0..rows).map(row).collect::<Vec<_>>().join(", ")
    }

    /// SQL for "`expr` is one of `ids`", with the one parameter to bind at `placeholder`:
    /// a JSON array read by `json_each` in SQLite, an `integer[]` in PostgreSQL (which its
    /// planner can use indexes with). A list is one parameter whatever its length.
    pub(crate) fn among_ids(self, expr: &str, placeholder: &str, ids: &[i64]) -> (String, String) {
        let joined = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        match self {
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

    /// SQL for the services of principal `o`, aggregated into one JSON array of
    /// `[id, lastAuthenticated, serviceName, serviceNamespace, lastAuthenticatedEntity,
    /// totalAuthenticatedEntities]` in no particular order (see `read::services_by_id`).
    pub(crate) fn aggregated_services(self) -> String {
        let columns = [
            "a.id",
            "a.\"lastAuthenticated\"",
            "a.\"serviceName\"",
            "a.\"serviceNamespace\"",
            "a.\"lastAuthenticatedEntity\"",
            "a.\"totalAuthenticatedEntities\"",
        ]
        .join(", ");
        match self {
            Dialect::Sqlite => format!(
                "(SELECT json_group_array(json_array({columns})) FROM advisor_data a \
                 WHERE a.item_id = o.id)"
            ),
            Dialect::Postgres => format!(
                "COALESCE((SELECT json_agg(json_build_array({columns})) FROM advisor_data a \
                 WHERE a.item_id = o.id), CAST('[]' AS json))"
            ),
        }
    }

    /// SQL for one row: `version`, then the principals `o` matching `matching` as one JSON
    /// array of `[id, arn, lastUpdated, services]`.
    pub(crate) fn stored_page(self, version: &str, matching: &str) -> String {
        let last_updated = self.timestamp_text("o.\"lastUpdated\"");
        let services = self.aggregated_services();
        match self {
            // The outer levels put together as text: SQLite's JSON functions would parse every
            // nested array again, which costs more than the query itself.
            Dialect::Sqlite => format!(
                "SELECT {version}, '[' || group_concat('[' || o.id || ',' \
                 || json_quote(o.arn) || ',' || json_quote({last_updated}) || ',' \
                 || {services} || ']', ',') || ']' FROM aws_iam_object o WHERE {matching}"
            ),
            Dialect::Postgres => format!(
                "SELECT {version}, CAST(json_agg(json_build_array(o.id, o.arn, \
                 {last_updated}, {services})) AS TEXT) FROM aws_iam_object o \
                 WHERE {matching}"
            ),
        }
    }

    /// SQL for `[lastUpdated, services]` of principal `o` as JSON text.
    pub(crate) fn unrendered(self) -> String {
        let last_updated = self.timestamp_text("o.\"lastUpdated\"");
        let services = self.aggregated_services();
        match self {
            // The outer levels as text: SQLite's JSON functions would parse the aggregate again.
            Dialect::Sqlite => {
                format!("'[' || json_quote({last_updated}) || ',' || {services} || ']'")
            }
            Dialect::Postgres => {
                format!("CAST(json_build_array({last_updated}, {services}) AS TEXT)")
            }
        }
    }

    /// SQL for a rendered page: `header` and `text` of each principal `FROM ... WHERE ...` in
    /// `principals`, with `version` on every row. SQLite: one row of `version`, the headers
    /// joined and the texts joined by `separator` (a row is a hand-off from SQLite's thread).
    /// PostgreSQL: one row per principal, or `version` alone when none match. Joined in
    /// PostgreSQL (`string_agg`), a page of an account's 100 principals grew a text of about
    /// 300 kB in fresh memory, and perf put most of PostgreSQL's time at a million principals
    /// in that memory's page faults and copies.
    pub(crate) fn rendered_page(
        self,
        version: &str,
        header: &str,
        text: &str,
        principals: &str,
        separator: u8,
    ) -> String {
        match self {
            Dialect::Sqlite => format!(
                "SELECT {version}, group_concat({header}, ''), \
                 group_concat({text}, char({separator})) {principals}"
            ),
            Dialect::Postgres => format!(
                "SELECT p.version, x.header, x.text FROM (SELECT {version} AS version) p \
                 LEFT JOIN LATERAL (SELECT {header} AS header, {text} AS text {principals}) x \
                 ON true"
            ),
        }
    }

    /// SQL for one row holding every row `SELECT {columns} {rest}` would return, as one JSON
    /// array of arrays (`[]` for none): one hand-off from the database's thread instead of one
    /// per row. Text comes back as JSON strings, numbers as numbers, NULL as `null`.
    pub(crate) fn rows_as_json(self, columns: &str, rest: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "SELECT '[' || COALESCE(group_concat(json_array({columns}), ','), '') || ']' {rest}"
            ),
            Dialect::Postgres => format!(
                "SELECT CAST(COALESCE(json_agg(json_build_array({columns})), CAST('[]' AS json)) AS TEXT) {rest}"
            ),
        }
    }

    /// SQL for one row: the roles and users of account `$1` as one JSON array of
    /// `[arn, kind, created_ms, [[namespace, lastAuthenticated]...], [[namespace, action,
    /// lastAccessed]...]]`: one row rather than one per service, which costs a row's hand-off
    /// each (what findings read of an account's usage).
    pub(crate) fn account_usage(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "SELECT '[' || COALESCE(group_concat('[' || json_quote(o.arn) || ',' || json_quote(p.kind) \
                 || ',' || COALESCE(p.created_ms, 'null') || ',' \
                 || (SELECT json_group_array(json_array(a.\"serviceNamespace\", COALESCE(a.\"lastAuthenticated\", 0))) \
                     FROM advisor_data a WHERE a.item_id = p.item_id) || ',' \
                 || (SELECT json_group_array(json_array(x.\"serviceNamespace\", x.action, x.\"lastAccessed\")) \
                     FROM aardvark_actions x WHERE x.item_id = p.item_id) || ']', ','), '') || ']' \
                 FROM aardvark_principals p JOIN aws_iam_object o ON o.id = p.item_id \
                 WHERE p.account = $1 AND p.kind IN ('role', 'user')"
            }
            Dialect::Postgres => {
                "SELECT CAST(COALESCE(json_agg(json_build_array(o.arn, p.kind, p.created_ms, \
                 COALESCE((SELECT json_agg(json_build_array(a.\"serviceNamespace\", COALESCE(a.\"lastAuthenticated\", 0))) \
                     FROM advisor_data a WHERE a.item_id = p.item_id), CAST('[]' AS json)), \
                 COALESCE((SELECT json_agg(json_build_array(x.\"serviceNamespace\", x.action, x.\"lastAccessed\")) \
                     FROM aardvark_actions x WHERE x.item_id = p.item_id), CAST('[]' AS json)))), \
                 CAST('[]' AS json)) AS TEXT) \
                 FROM aardvark_principals p JOIN aws_iam_object o ON o.id = p.item_id \
                 WHERE p.account = $1 AND p.kind IN ('role', 'user')"
            }
        }
    }

    /// SQL that locks the principals `matching` until the transaction ends, in id order (the
    /// order the migration's triggers use); `None` for SQLite, whose writers take turns.
    pub(crate) fn lock_principals(self, matching: &str) -> Option<String> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(format!(
                "SELECT 1 FROM aws_iam_object WHERE {matching} ORDER BY id FOR NO KEY UPDATE"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The pool's PostgreSQL sessions are set up as every statement of ours needs them: UTC,
    /// index scans, and no JIT compilation (which cost 17 ms of a 57 ms page at a million).
    #[tokio::test]
    async fn postgres_sessions_run_without_jit() {
        let Ok(url) = std::env::var("AARDVARK_TEST_POSTGRES_URL") else {
            eprintln!("note: AARDVARK_TEST_POSTGRES_URL is not set; skipping");
            return;
        };
        let rendering = crate::db::Rendering {
            format: 1,
            render: |_, _| String::new(),
            digest: |_| None,
        };
        let db = crate::db::Database::connect(&url, rendering).await.unwrap();
        for (setting, wanted) in [
            ("jit", "off"),
            ("enable_seqscan", "off"),
            ("TimeZone", "UTC"),
        ] {
            let value: String = sqlx::query_scalar(&format!("SELECT current_setting('{setting}')"))
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(value, wanted, "{setting}");
        }
        db.close().await;
    }
}
