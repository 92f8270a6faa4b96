//! Shared test helpers: a fresh database per test (SQLite always, PostgreSQL when
//! `AARDVARK_TEST_POSTGRES_URL` is set), the real server on an ephemeral port, and exact JSON
//! comparison.
#![allow(dead_code)] // each test file uses a part of this

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use aardvark::api::wire::RENDERING;
use aardvark::db::vocabulary::AdvisorFilter;
use aardvark::db::vocabulary::{PrincipalUsage, ServiceUsage};
use aardvark::db::write::WriteOptions;
use aardvark::db::{Database, Reader};
use aws_sim::ExpectedService;
use serde_json::Value;
use sqlx::Executor;

pub const POSTGRES_ENV: &str = "AARDVARK_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database that lives as long as this value.
pub struct TestDb {
    pub db: Database,
    /// SQLAlchemy-style URI of the database.
    pub uri: String,
    _dir: Option<tempfile::TempDir>,
    /// For PostgreSQL: the server's admin URL and the database to drop at the end.
    postgres_cleanup: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres_cleanup.take() else {
            return;
        };
        // Drop cannot await: drop the database from a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = sqlx::AnyPool::connect(&admin_url).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database on `backend`, or `None` (with a note) when PostgreSQL is not configured.
pub async fn fresh_db(backend: Backend) -> Option<TestDb> {
    let test_db = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let uri = format!("sqlite:///{}", dir.path().join("test.db").display());
            TestDb {
                db: Database::connect(&uri, RENDERING).await.unwrap(),
                uri,
                _dir: Some(dir),
                postgres_cleanup: None,
            }
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
                eprintln!("note: {POSTGRES_ENV} is not set; skipping the PostgreSQL variant");
                return None;
            };
            let name = format!(
                "aardvark_t_{}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos()
            );
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            admin.close().await;
            let (base, query) = match admin_url.split_once('?') {
                Some((base, query)) => (base, format!("?{query}")),
                None => (admin_url.as_str(), String::new()),
            };
            let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
            let uri = format!("{server}/{name}{query}");
            TestDb {
                db: Database::connect(&uri, RENDERING).await.unwrap(),
                uri,
                _dir: None,
                postgres_cleanup: Some((admin_url.clone(), name)),
            }
        }
    };
    test_db.db.migrate().await.unwrap();
    Some(test_db)
}

impl TestDb {
    /// The database's URL as sqlx takes it.
    pub fn sqlx_url(&self) -> String {
        sqlx::any::install_default_drivers();
        match aardvark::db::DatabaseTarget::parse(&self.uri).unwrap() {
            aardvark::db::DatabaseTarget::SqliteFile(path) => {
                format!("sqlite://{}", path.display())
            }
            aardvark::db::DatabaseTarget::Postgres(url) => url,
            aardvark::db::DatabaseTarget::SqliteMemory => unreachable!(),
        }
    }

    /// Runs raw SQL on the database (for setting up states the write path never produces).
    pub async fn execute(&self, sql: &str) {
        let pool = sqlx::AnyPool::connect(&self.sqlx_url()).await.unwrap();
        pool.execute(sql).await.unwrap();
        pool.close().await;
    }

    /// The first column of every row `sql` returns, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let pool = sqlx::AnyPool::connect(&self.sqlx_url()).await.unwrap();
        let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }

    pub async fn store(&self, principals: &[PrincipalUsage]) {
        self.db
            .store_principals(principals, WriteOptions::default())
            .await
            .unwrap();
    }
}

/// Generates `sqlite_<name>` and `postgres_<name>` tests from `async fn <name>(Backend)`.
// `crate` is meant: the macro expands in the test crate that defines `common`.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

pub fn service(
    namespace: &str,
    last_authenticated: i64,
    entity: Option<&str>,
    total: i64,
) -> ServiceUsage {
    ServiceUsage {
        service_name: format!("Service {namespace}"),
        service_namespace: namespace.to_owned(),
        last_authenticated,
        last_authenticated_entity: entity.map(str::to_owned),
        total_authenticated_entities: total,
        ..ServiceUsage::default()
    }
}

pub fn principal(arn: &str, services: Vec<ServiceUsage>) -> PrincipalUsage {
    PrincipalUsage {
        arn: arn.to_owned(),
        services,
        listing: None,
    }
}

/// The server on an ephemeral port, stopped when dropped.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub async fn spawn_app(db: &Database) -> TestApp {
    spawn_app_with(db, aardvark::api::ApiOptions::default()).await
}

/// [`spawn_app`] with authentication or metrics options.
pub async fn spawn_app_with(db: &Database, options: aardvark::api::ApiOptions) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let db = db.clone();
    tokio::spawn(async move {
        aardvark::service::Service {
            db,
            listener: listener.into_std().unwrap(),
            tls: None,
            schedule: None,
            shutdown_timeout: std::time::Duration::from_secs(5),
            limits: Default::default(),
        }
        .run(&options, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        base_url,
        client: reqwest::Client::new(),
        shutdown: Some(tx),
    }
}

/// A response's status, headers and body text.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.text))
    }

    /// Asserts the exact bytes: compact JSON with sorted keys and a trailing newline.
    pub fn assert_exact(&self, status: u16, expected: &Value) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json")
        );
        assert_eq!(self.text, format!("{}\n", sorted_compact(expected)));
    }

    pub fn assert_error(&self, status: u16, message_part: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        let message = self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains(message_part),
            "{message:?} lacks {message_part:?}"
        );
    }
}

impl TestApp {
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.send(
            self.client
                .get(format!("{}{path_and_query}", self.base_url)),
        )
        .await
    }

    pub async fn post_json(&self, path_and_query: &str, body: &str) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path_and_query}", self.base_url))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }
}

/// Compact JSON with every object's keys sorted, independent of serde_json's map order.
pub fn sorted_compact(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        Value::String(key.clone()),
                        sorted_compact(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(sorted_compact)
                .collect::<Vec<_>>()
                .join(",")
        ),
        scalar => scalar.to_string(),
    }
}

/// Everything stored, in the simulator's terms.
pub async fn stored(db: &Database) -> BTreeMap<String, Vec<ExpectedService>> {
    let page = Reader::new(db.clone())
        .advisors(&AdvisorFilter::default(), 1, 1_000_000)
        .await
        .unwrap();
    page.principals()
        .unwrap()
        .into_iter()
        .map(|principal| {
            let mut services: Vec<ExpectedService> = principal
                .services
                .into_iter()
                .map(|s| ExpectedService {
                    service_namespace: s.service_namespace.unwrap_or_default().into_owned(),
                    service_name: s.service_name.unwrap_or_default().into_owned(),
                    last_authenticated: s.last_authenticated.unwrap_or_default(),
                    last_authenticated_entity: s.last_authenticated_entity.map(Cow::into_owned),
                    total_authenticated_entities: s
                        .total_authenticated_entities
                        .unwrap_or_default(),
                })
                .collect();
            services.sort();
            (principal.arn.into_owned(), services)
        })
        .collect()
}

/// Asserts that what was stored is exactly what was expected, naming the first differences
/// rather than printing both maps whole.
pub fn assert_same(
    stored: &BTreeMap<String, Vec<ExpectedService>>,
    expected: &BTreeMap<String, Vec<ExpectedService>>,
) {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|arn| !stored.contains_key(*arn))
        .collect();
    let extra: Vec<&String> = stored
        .keys()
        .filter(|arn| !expected.contains_key(*arn))
        .collect();
    let different: Vec<&String> = expected
        .keys()
        .filter(|arn| stored.get(*arn).is_some_and(|s| s != &expected[*arn]))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && different.is_empty(),
        "{} missing (first {:?}), {} unexpected (first {:?}), {} different (first {:?}: stored {:?}, expected {:?})",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first(),
        different.len(),
        different.first(),
        different.first().map(|arn| &stored[*arn]),
        different.first().map(|arn| &expected[*arn]),
    );
}

/// The `aardvark` binary in `dir` with a settings file over `db` collecting `sim`'s accounts
/// (`settings` lines added), AWS reached at the simulator with static credentials, and no
/// `AARDVARK_*` or `AWS_*` variable of the caller's; stdout and stderr piped.
pub fn aardvark_against(
    dir: &std::path::Path,
    sim: &aws_sim::SimHandle,
    db: &TestDb,
    settings: &str,
) -> std::process::Command {
    let accounts: Vec<String> = sim
        .account_ids()
        .iter()
        .map(|id| format!("'{id}'"))
        .collect();
    std::fs::write(
        dir.join("settings.yaml"),
        format!(
            "default:\n  SQLALCHEMY_DATABASE_URI: {}\n  ACCOUNTS: [{}]\n  UPDATER_POLL_INTERVAL_MS: 20\n{settings}",
            db.uri,
            accounts.join(", ")
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aardvark"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AARDVARK_") || key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", &sim.base_url)
        .env("AWS_ACCESS_KEY_ID", "AKIDHUB")
        .env("AWS_SECRET_ACCESS_KEY", "hub-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// A collector of `db` that reaches AWS at `sim`, with the hub's static credentials.
pub async fn collector_for(
    sim: &aws_sim::SimHandle,
    db: &Database,
    settings: aardvark::config::Settings,
) -> aardvark::collector::Collector {
    let overrides = aardvark::collector::aws::AwsOverrides {
        endpoint_url: Some(sim.base_url.clone()),
        credentials: Some(aws_sdk_sts::config::Credentials::new(
            "AKIDHUB",
            "hub-secret",
            None,
            None,
            "test",
        )),
    };
    aardvark::collector::Collector::new(settings, db.clone(), overrides).await
}

/// A finished command's status, stdout and stderr, for assertion messages.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a child writes to `pipe`, gathered as it comes by a thread of its own.
pub fn gathered(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    std::thread::spawn({
        let text = text.clone();
        move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = pipe.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        }
    });
    text
}

/// How long a test waits for a server process to start or stop.
pub const PROCESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// A running `aardvark serve` (or `demo`), killed when dropped; what it wrote to stderr is
/// gathered as it comes.
pub struct Server {
    pub child: std::process::Child,
    /// `http://HOST:PORT` or `https://...`, as its "serving on" line said.
    pub base_url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `command` (whose stdout and stderr are piped) and waits for its "serving on" line.
    pub fn spawn(mut command: std::process::Command) -> Server {
        use std::io::BufRead;
        let mut child = command.spawn().unwrap();
        let stderr = gathered(child.stderr.take().unwrap());
        let (sender, receiver) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.strip_prefix("serving on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = sender.send(url.trim_end_matches('/').to_owned());
                }
            }
        });
        let base_url = match receiver.recv_timeout(PROCESS_DEADLINE) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!(
                    "the server did not start: {:?}; stderr: {}",
                    output.status,
                    stderr.lock().unwrap()
                );
            }
        };
        Server {
            child,
            base_url,
            stderr,
        }
    }

    /// `host:port` of the server.
    pub fn address(&self) -> String {
        self.base_url
            .split("://")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to end, with the deadline; its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr holds `text`, with the deadline.
    pub async fn until_logged(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + PROCESS_DEADLINE;
        loop {
            let stderr = self.stderr();
            if stderr.contains(text) {
                return stderr;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{text:?} was not logged: {stderr}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Opens a connection to `address`, sends nothing, and waits (at most a minute) for the server
/// to close it: how long that took, and whatever it sent.
pub async fn silent_connection_closed(address: &str) -> (std::time::Duration, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    closed_after(stream, std::time::Instant::now()).await
}

/// Reads `stream` (a connection or its read half) until the server closes it (end of file or
/// reset), at most a minute after `since`: how long after `since` it closed, and what it sent.
pub async fn closed_after(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    since: std::time::Instant,
) -> (std::time::Duration, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for a minute"
    );
    (since.elapsed(), received)
}

/// Settings that collect every account of `sim` into `db` fast: unpaced, polling every few
/// milliseconds.
pub fn quick_settings(sim: &aws_sim::SimHandle, db: &TestDb) -> aardvark::config::Settings {
    aardvark::config::Settings {
        database_uri: db.uri.clone(),
        accounts: sim.account_ids().to_vec(),
        account_source: aardvark::config::AccountSource::Static,
        updater_account_rate_limit: 0.0,
        updater_poll_interval: std::time::Duration::from_millis(2),
        updater_poll_max_interval: std::time::Duration::from_millis(20),
        ..Default::default()
    }
}
