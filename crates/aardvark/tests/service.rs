//! `aardvark serve` as a service, the binary end to end: collections on a schedule while the
//! API serves, two servers on one database with one collector at a time, a killed collector
//! whose lock is taken over, SIGTERM during requests and during a collection, and HTTPS with
//! its configuration errors.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aardvark::db::runs::RunStatus;
use aws_sim::{Scenario, SimHandle};
use common::{fresh_db, stored, Backend, Server, TestDb};

const DEADLINE: Duration = Duration::from_secs(120);
const TOKEN: &str = "service-test-token-5f1c";

/// `aardvark serve` in `dir` over `db`, collecting from `sim`, with `settings` lines added to
/// its settings file and `args` after `serve`.
fn serve(dir: &Path, sim: &SimHandle, db: &TestDb, settings: &str, args: &[&str]) -> Server {
    let mut command = common::aardvark_against(dir, sim, db, settings);
    command
        .args([
            "--log-format",
            "json",
            "-v",
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(args)
        .env("AARDVARK_API_TOKENS", format!("other-token,{TOKEN}"));
    Server::spawn(command)
}

/// A run as stored: its id, status, and start and end (stored form, microseconds).
#[derive(Debug, Clone)]
struct StoredRun {
    id: i64,
    status: String,
    started: String,
    finished: Option<String>,
    scheduled: bool,
}

async fn stored_runs(db: &TestDb) -> Vec<StoredRun> {
    let mut runs: Vec<StoredRun> = db
        .db
        .recent_runs(1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|run| StoredRun {
            id: run.id,
            status: run.status.as_str().to_owned(),
            started: run.started_at,
            finished: run.finished_at,
            scheduled: run.request.contains("\"scheduled\":true"),
        })
        .collect();
    runs.reverse(); // oldest first
    runs
}

/// Waits, with the deadline, until `done` holds of the stored runs; returns them.
async fn until_runs(
    db: &TestDb,
    what: &str,
    done: impl Fn(&[StoredRun]) -> bool,
) -> Vec<StoredRun> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let runs = stored_runs(db).await;
        if done(&runs) {
            return runs;
        }
        assert!(Instant::now() < deadline, "never {what}: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ended_ok(runs: &[StoredRun]) -> usize {
    runs.iter()
        .filter(|run| run.scheduled && run.status == "ok")
        .count()
}

fn parse_stored(text: &str) -> chrono::NaiveDateTime {
    aardvark::time::parse_stored(text).unwrap_or_else(|| panic!("not a stored time: {text}"))
}

/// Scheduled runs never overlap, and each starts at least `every` after the one before.
fn assert_one_at_a_time(runs: &[StoredRun], every: Duration) {
    let scheduled: Vec<&StoredRun> = runs.iter().filter(|run| run.scheduled).collect();
    for pair in scheduled.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        let first_end = parse_stored(first.finished.as_deref().expect("an ended run"));
        let second_start = parse_stored(&second.started);
        assert!(
            first_end <= second_start,
            "runs {} and {} overlap: {runs:#?}",
            first.id,
            second.id
        );
        assert!(
            (second_start - parse_stored(&first.started))
                .to_std()
                .unwrap()
                >= every,
            "run {} started less than {every:?} after run {}: {runs:#?}",
            second.id,
            first.id
        );
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get_with_token(server: &Server, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", server.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

fn small_sim() -> Scenario {
    Scenario::generated(5, 2, 3)
}

/// Six accounts of 30 principals, 20 ms a call, 20 requests/s per account: several seconds.
fn slow_scenario() -> Scenario {
    let mut scenario = Scenario::generated(77, 6, 30);
    scenario.defaults.latency_ms = 20;
    scenario.defaults.rate_limit = Some(aws_sim::RateLimit {
        per_second: 20.0,
        burst: 5,
    });
    scenario
}

const SLOW_SETTINGS: &str = "  UPDATER_ACCOUNT_RATE_LIMIT: 20\n  UPDATER_ACCOUNT_BURST: 5\n";

/// Waits, with the deadline, until a run is collecting and `count` principals are stored.
async fn until_collecting(db: &TestDb, count: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stored = stored(&db.db).await.len();
        if stored >= count {
            return;
        }
        assert!(Instant::now() < deadline, "only {stored} principals stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A schedule of two seconds produces runs, one after another, while requests are answered;
/// the collecting server's `/metrics` counts its AWS calls; SIGTERM ends it with 0; the token
/// it was given never reaches its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_collects_while_the_api_serves() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(small_sim()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &sim, &db, "", &["--collect-every", "2s"]);
    let mut answered = 0;
    let runs = loop {
        let reply = get_with_token(&server, "/api/1/advisors?count=5").await;
        assert_eq!(reply.status(), 200);
        answered += 1;
        let runs = stored_runs(&db).await;
        if ended_ok(&runs) >= 3 {
            break runs;
        }
        assert!(answered < 100_000, "no third run: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_one_at_a_time(&runs, Duration::from_secs(2));
    assert!(answered > 3, "requests were answered while collecting");
    common::assert_same(&stored(&db.db).await, sim.expected());

    let metrics = get_with_token(&server, "/metrics")
        .await
        .text()
        .await
        .unwrap();
    let scrape =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let calls: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "aardvark_aws_calls_total"
                && s.labels.get("operation") == Some("AssumeRole")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => panic!("not a counter: {s:?}"),
        })
        .sum();
    assert!(
        calls >= 6.0,
        "3 runs of 2 accounts assume 6 roles at least: {metrics}"
    );

    server.signal("-TERM");
    assert_eq!(server.exit_code().await, Some(0), "{}", server.stderr());
    let log = server.stderr();
    assert!(log.contains("scheduled collection done"), "{log}");
    assert!(!log.contains(TOKEN), "the token reached the log");
}

/// Two servers on one PostgreSQL database, both scheduled every two seconds: both serve, and
/// their runs never overlap nor come closer than the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_collect_one_at_a_time() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let sim = aws_sim::start(small_sim()).await.unwrap();
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = serve(first_dir.path(), &sim, &db, "", &["--collect-every", "2s"]);
    let second = serve(second_dir.path(), &sim, &db, "", &["--collect-every", "2s"]);
    let runs = until_runs(&db, "four scheduled runs", |runs| ended_ok(runs) >= 4).await;
    assert_one_at_a_time(&runs, Duration::from_secs(2));
    for server in [&first, &second] {
        let reply = get_with_token(server, "/api/1/runs").await;
        assert_eq!(reply.status(), 200);
        let body: serde_json::Value = reply.json().await.unwrap();
        assert!(body["total"].as_u64().unwrap() >= 4, "{body}");
    }
}

/// Two servers on one PostgreSQL database, one with `COLLECT_WORKER: false`: it serves, says
/// that it takes no part, and collects nothing of the runs the other makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_no_worker_only_serves() {
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let sim = aws_sim::start(small_sim()).await.unwrap();
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _worker = serve(first_dir.path(), &sim, &db, "", &["--collect-every", "1s"]);
    let idle = serve(
        second_dir.path(),
        &sim,
        &db,
        "  COLLECT_WORKER: false\n",
        &["--collect-every", "1s"],
    );
    let runs = until_runs(&db, "three scheduled runs", |runs| ended_ok(runs) >= 3).await;
    for run in &runs {
        for record in db.db.run_accounts(run.id).await.unwrap() {
            assert_ne!(
                record.worker_pid,
                Some(i64::from(idle.child.id())),
                "{record:#?}"
            );
        }
    }
    assert_eq!(get_with_token(&idle, "/api/1/runs").await.status(), 200);
    assert!(
        idle.stderr().contains("COLLECT_WORKER is false"),
        "{}",
        idle.stderr()
    );
}

/// A server killed in the middle of its scheduled run, where runs are not shared (SQLite, or
/// PostgreSQL with `COLLECT_SHARED: false`): the other takes the lock over, marks the dead run
/// `interrupted` and collects everything.
async fn a_killed_collectors_lock_is_taken_over(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let settings = format!("{SLOW_SETTINGS}  COLLECT_SHARED: false\n");
    let sim = aws_sim::start(slow_scenario()).await.unwrap();
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = serve(
        first_dir.path(),
        &sim,
        &db,
        &settings,
        &["--collect-every", "1h"],
    );
    until_collecting(&db, 10).await;
    let second = serve(
        second_dir.path(),
        &sim,
        &db,
        &settings,
        &["--collect-every", "1h"],
    );
    // The second is due (no scheduled run has ended) but the first holds the lock.
    let runs = stored_runs(&db).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    first.child.kill().unwrap(); // SIGKILL: nothing can release the lock but its death
    first.child.wait().unwrap();
    let runs = until_runs(&db, "a run by the second server", |runs| {
        ended_ok(runs) == 1
    })
    .await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0].status, RunStatus::Interrupted.as_str(), "{runs:#?}");
    assert_eq!(runs[1].status, RunStatus::Ok.as_str(), "{runs:#?}");
    common::assert_same(&stored(&db.db).await, sim.expected());
    assert!(
        second.stderr().contains("marked interrupted"),
        "{}",
        second.stderr()
    );
}

/// SIGTERM while a request is in flight and a scheduled run collects: no new connection is
/// accepted, the request is answered, the run stops at a principal's end and is recorded
/// `interrupted`, and the server exits 0.
async fn sigterm_finishes_requests_and_interrupts_the_run(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let sim = aws_sim::start(slow_scenario()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        dir.path(),
        &sim,
        &db,
        SLOW_SETTINGS,
        &["--collect-every", "1h"],
    );
    until_collecting(&db, 10).await;
    let address = server.base_url.trim_start_matches("http://").to_owned();
    // A request whose body has not arrived: in flight when the signal comes. `Expect:
    // 100-continue` makes the server say when its handler has started reading the body.
    let body = "{\"arn\": []}";
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "POST /api/1/advisors?count=1 HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len(),
    )
    .unwrap();
    stream.flush().unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    server.signal("-TERM");
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"total\":"), "{answer}");
    assert_eq!(server.exit_code().await, Some(0), "{}", server.stderr());

    let runs = stored_runs(&db).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].status, RunStatus::Interrupted.as_str());
    assert!(runs[0].finished.is_some());
    let stored_now = stored(&db.db).await;
    assert!(stored_now.len() < sim.expected().len());
    for (arn, services) in &stored_now {
        assert_eq!(Some(services), sim.expected().get(arn), "{arn}");
    }
}

on_both_backends!(
    a_killed_collectors_lock_is_taken_over,
    sigterm_finishes_requests_and_interrupts_the_run,
);

/// The TLS files as rcgen makes them: a CA, a server certificate it signed for 127.0.0.1, the
/// server's key, and a key of another pair.
struct TestCertificates {
    ca: rcgen::Certificate,
    chain_pem: String,
    key_pem: String,
    other_key_pem: String,
}

fn test_certificates() -> TestCertificates {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "aardvark test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    TestCertificates {
        chain_pem: format!("{}{}", server.pem(), ca.pem()),
        key_pem: server_key.serialize_pem(),
        other_key_pem: rcgen::KeyPair::generate().unwrap().serialize_pem(),
        ca,
    }
}

/// `serve --tls-cert --tls-key` over HTTPS with a certificate chain: a client that trusts only
/// the CA gets answers, with HSTS; plain HTTP gets none; a connection that never starts its
/// handshake is closed after the header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certificate_chain() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(small_sim()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certificates = test_certificates();
    std::fs::write(dir.path().join("chain.pem"), &certificates.chain_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &certificates.key_pem).unwrap();
    let server = serve(
        dir.path(),
        &sim,
        &db,
        "  HEADER_READ_TIMEOUT_SECONDS: 1\n",
        &["--tls-cert", "chain.pem", "--tls-key", "key.pem"],
    );
    assert!(
        server.base_url.starts_with("https://127.0.0.1:"),
        "{}",
        server.base_url
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificates.ca.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let address = server.base_url.trim_start_matches("https://").to_owned();
    let https_get = |path: String, authorization: Option<String>| {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.clone()));
        let address = address.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut stream = connector.connect(name, tcp).await.unwrap();
            let authorization = authorization
                .map(|value| format!("Authorization: {value}\r\n"))
                .unwrap_or_default();
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let answer = https_get("/healthcheck".into(), None).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    assert!(
        answer.contains("strict-transport-security: max-age=31536000\r\n"),
        "{answer}"
    );
    let (closed_after, _) = common::silent_connection_closed(&address).await;
    assert!(
        closed_after >= Duration::from_millis(500) && closed_after < Duration::from_secs(10),
        "a silent TLS connection was closed after {closed_after:?}"
    );
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("aardvark:{TOKEN}"),
    );
    let answer = https_get("/api/1/advisors".into(), Some(format!("Basic {basic}"))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = https_get("/api/1/advisors".into(), None).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    let plain = server.base_url.replace("https://", "http://");
    let answered = client().get(format!("{plain}/healthcheck")).send().await;
    assert!(
        answered.map_or(true, |reply| reply.status() != 200),
        "plain HTTP was answered on the HTTPS port"
    );
}

/// Bad TLS settings: exit 1 before serving, with a message naming the file.
#[test]
fn bad_tls_files_exit_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = test_certificates();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("chain.pem", &certificates.chain_pem);
    write("key.pem", &certificates.key_pem);
    write("other-key.pem", &certificates.other_key_pem);
    write("not-pem.txt", "hello\n");
    std::fs::create_dir(dir.path().join("a-directory")).unwrap();
    write(
        "settings.yaml",
        "default:\n  SQLALCHEMY_DATABASE_URI: sqlite:///served.db\n",
    );
    let cases: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::from([
        (
            "missing certificate",
            (
                vec!["--tls-cert", "missing.pem", "--tls-key", "key.pem"],
                vec!["cannot read the TLS certificate file missing.pem"],
            ),
        ),
        (
            "unreadable key",
            (
                vec!["--tls-cert", "chain.pem", "--tls-key", "a-directory"],
                vec!["cannot read the TLS key file a-directory"],
            ),
        ),
        (
            "key of another certificate",
            (
                vec!["--tls-cert", "chain.pem", "--tls-key", "other-key.pem"],
                vec![
                    "the private key in other-key.pem does not match the certificate in chain.pem",
                ],
            ),
        ),
        (
            "not PEM",
            (
                vec!["--tls-cert", "not-pem.txt", "--tls-key", "key.pem"],
                vec!["not-pem.txt holds no PEM certificate"],
            ),
        ),
        (
            "key without certificate",
            (
                vec!["--tls-key", "key.pem"],
                vec!["--tls-key (TLS_KEY_FILE) is set but --tls-cert (TLS_CERT_FILE) is not"],
            ),
        ),
        (
            "certificate without key",
            (
                vec!["--tls-cert", "chain.pem"],
                vec!["--tls-cert (TLS_CERT_FILE) is set but --tls-key (TLS_KEY_FILE) is not"],
            ),
        ),
    ]);
    for (case, (args, expected)) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_aardvark"))
            .current_dir(dir.path())
            .env_remove("AARDVARK_TLS_CERT_FILE")
            .env_remove("AARDVARK_TLS_KEY_FILE")
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{case}: {stderr:?} lacks {part:?}");
        }
        assert!(output.stdout.is_empty(), "{case}: served anyway");
    }
    assert!(
        !dir.path().join("served.db").exists(),
        "the database was opened before the TLS files were checked"
    );
}
