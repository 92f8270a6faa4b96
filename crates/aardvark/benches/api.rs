//! Ingest and API benchmarks: `cargo bench -p aardvark --bench api [-- postgres] [-- million]`.
//!
//! 1. Ingest: generates ACCOUNTS x PRINCIPALS principals with SERVICES services each and writes
//!    them through the storage layer's write path (upsert rules included), printing rows/s and
//!    the ratio to plain multi-row INSERTs of the same rows measured in the same run.
//! 2. API: serves that database with the release `aardvark serve` binary in its own process and
//!    drives each query kind clients send at 16 concurrent connections, printing requests/s, p50,
//!    p99, the ratio to `/healthcheck` driven the same way in the same run, and the server's
//!    peak RSS.
//!
//! SQLite always; `postgres` adds PostgreSQL (AARDVARK_TEST_POSTGRES_URL, a fresh database), and
//! `million` the same queries over 1,000,000 principals on PostgreSQL (a database kept between
//! runs). AARDVARK_BENCH_ONLY=<text> drives only the query kinds whose label contains it.
//!
//! To compare builds of the server over the same data: AARDVARK_BENCH_SQLITE_FILE=<path> keeps
//! the SQLite database there (filled and measured when absent, only served when present), and
//! AARDVARK_BENCH_SERVER=<binary> serves it with another build than target/release/aardvark.

mod common;

use common::{postgres_database, proc_status};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aardvark::api::wire::RENDERING;
use aardvark::db::vocabulary::{PrincipalUsage, ServiceUsage};
use aardvark::db::write::WriteOptions;
use aardvark::db::Database;

const SERVICES: usize = 20;
const CONCURRENCY: usize = 16;
const RUN: Duration = Duration::from_secs(6);
const BATCH: u64 = 100;
/// Changes per namespace of the principal whose history the API benchmark asks for.
const HISTORY_CHANGES: i64 = 50;

fn arn(account: u64, principal: u64) -> String {
    let kinds = ["role", "user", "group", "policy"];
    format!(
        "arn:aws:iam::{:012}:{}/p-{principal:05}",
        100_000_000_000 + account,
        kinds[(principal % 4) as usize]
    )
}

fn principal(account: u64, index: u64) -> PrincipalUsage {
    let arn = arn(account, index);
    let services = (0..SERVICES)
        .map(|s| {
            let (namespace, name) =
                aws_sim::SERVICES[(index as usize * 7 + s * 13) % aws_sim::SERVICES.len()];
            let used = !(index + s as u64).is_multiple_of(3);
            ServiceUsage {
                service_name: name.to_owned(),
                service_namespace: namespace.to_owned(),
                last_authenticated: if used {
                    1_790_000_000_000 - ((index * 31 + s as u64 * 17) % 400) as i64 * 86_400_000
                } else {
                    0
                },
                last_authenticated_entity: used.then(|| arn.clone()),
                total_authenticated_entities: i64::from(used),
                ..ServiceUsage::default()
            }
        })
        .collect();
    PrincipalUsage {
        arn,
        services,
        listing: None,
    }
}

/// Writes the principals of `accounts` (per_account each) in batches of BATCH with the shipped
/// write options; returns service rows per second.
async fn ingest(db: &Database, accounts: std::ops::Range<u64>, per_account: u64) -> f64 {
    ingest_with(db, accounts, per_account, WriteOptions::default()).await
}

/// [`ingest`] with `options`. Statistics are brought up to date afterwards, outside the
/// measurement.
async fn ingest_with(
    db: &Database,
    accounts: std::ops::Range<u64>,
    per_account: u64,
    options: WriteOptions,
) -> f64 {
    let started = Instant::now();
    let written = (accounts.end - accounts.start) * per_account;
    let mut batch = Vec::with_capacity(BATCH as usize);
    for account in accounts {
        for index in 0..per_account {
            batch.push(principal(account, index));
            if batch.len() as u64 == BATCH {
                db.store_principals(&batch, options).await.unwrap();
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        db.store_principals(&batch, options).await.unwrap();
    }
    let rate = (written as usize * SERVICES) as f64 / started.elapsed().as_secs_f64();
    db.optimize().await.unwrap();
    rate
}

/// The reference for ingest: the same rows, batches and transactions as plain multi-row
/// INSERTs into a table without indexes or constraints (no principal rows, no upsert rules),
/// through sqlx at `url`; returns rows/s. The table is dropped afterwards.
async fn plain_insert(url: &str, accounts: u64, per_account: u64) -> f64 {
    const COLUMNS: usize = 6;
    const ROWS_PER_STATEMENT: usize = 360 / COLUMNS; // the write path's parameter budget
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "CREATE TABLE bench_plain (item_id INTEGER, \"lastAuthenticated\" BIGINT, \
         \"serviceName\" VARCHAR(128), \"serviceNamespace\" VARCHAR(64), \
         \"lastAuthenticatedEntity\" TEXT, \"totalAuthenticatedEntities\" INTEGER)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let started = Instant::now();
    let total = accounts * per_account;
    for first in (0..total).step_by(BATCH as usize) {
        let mut rows = Vec::new();
        for n in first..(first + BATCH).min(total) {
            let usage = principal(n / per_account, n % per_account);
            rows.extend(
                usage
                    .services
                    .into_iter()
                    .map(|service| (n as i64, service)),
            );
        }
        let mut tx = pool.begin().await.unwrap();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            // Placeholders as the write path writes them: anonymous in SQLite.
            let values: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let at = row * COLUMNS;
                    let params: Vec<String> = (1..=COLUMNS)
                        .map(|c| match sqlite {
                            true => "?".to_owned(),
                            false => format!("${}", at + c),
                        })
                        .collect();
                    format!("({})", params.join(", "))
                })
                .collect();
            let sql = format!("INSERT INTO bench_plain VALUES {}", values.join(", "));
            let mut query = sqlx::query(&sql);
            for (item, service) in chunk {
                query = query
                    .bind(*item)
                    .bind(service.last_authenticated)
                    .bind(service.service_name.clone())
                    .bind(service.service_namespace.clone())
                    .bind(service.last_authenticated_entity.clone())
                    .bind(service.total_authenticated_entities);
            }
            query.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let rate = (total as usize * SERVICES) as f64 / started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_plain")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    rate
}

fn serve(uri: &str) -> (Child, String) {
    let binary = std::env::var_os("AARDVARK_BENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/aardvark")
        });
    let mut child = Command::new(&binary)
        .args(["serve", "-b", "127.0.0.1:0"])
        .env("AARDVARK_DATABASE_URI", uri)
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(std::env::temp_dir().join("aardvark-bench-server.log")).unwrap(),
        )
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start {} (cargo build --release -p aardvark): {err}",
                binary.display()
            )
        });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let address = line
        .trim_start_matches("serving on http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    (child, format!("http://{address}"))
}

type Query = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// Drives one query kind for RUN at CONCURRENCY; prints requests/s, p50, p99 and requests/s
/// as a share of `baseline`'s; returns requests/s.
async fn drive(label: &str, base: &str, query: Query, baseline: Option<f64>) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY as u64 {
        let client = reqwest::Client::new();
        let base = base.to_owned();
        let query = query.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = worker;
            while started.elapsed() < RUN {
                let url = format!("{base}{}", query(n.wrapping_mul(2_654_435_761)));
                let sent = Instant::now();
                let reply = client.get(&url).send().await.unwrap();
                assert!(reply.status().is_success(), "{url}: {}", reply.status());
                reply.bytes().await.unwrap();
                latencies.push(sent.elapsed());
                n += CONCURRENCY as u64;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| quantile_ms(&latencies, q);
    let rate = latencies.len() as f64 / elapsed;
    let share = baseline.map_or_else(String::new, |b| format!(", {:.3} of baseline", rate / b));
    println!(
        "  {label:<32} {rate:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests{share})",
        at(0.50),
        at(0.99),
        latencies.len()
    );
    rate
}

const UNDER_ATTACK: &str = "cheap requests under attack";
/// The costliest pattern we found that the server accepts (10 to 12 ms over 100,000 ARNs where
/// an account's prefix takes 2 ms): no literal to narrow the ARNs by or to reject one with, so
/// every ARN is tried whole, and `.*\d.{20}` makes its lazy DFA's states many.
const COSTLIEST_PATTERN: &str = r".*\d.{20}\d{13}";

/// One connection sending `path(n)` one request after another for RUN / 2: p50 and p99 in ms.
async fn one_client(base: &str, path: impl Fn(u64) -> String) -> (f64, f64) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < RUN / 2 {
        let url = format!("{base}{}", path(n.wrapping_mul(2_654_435_761)));
        let sent = Instant::now();
        let reply = client.get(&url).send().await.unwrap();
        assert!(reply.status().is_success(), "{url}: {}", reply.status());
        reply.bytes().await.unwrap();
        latencies.push(sent.elapsed());
        n += 1;
    }
    latencies.sort();
    (quantile_ms(&latencies, 0.50), quantile_ms(&latencies, 0.99))
}

/// The `q` quantile of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// `/healthcheck` and an exact ARN, each from one client, alone and then while CONCURRENCY
/// clients send the costliest pattern the server accepts: their p99 under attack against
/// their p99 alone, and what the attackers got.
async fn under_attack(base: &str, accounts: u64, per_account: u64) {
    let exact = move |n: u64| {
        format!(
            "/api/1/advisors?arn={}",
            arn((n / per_account) % accounts, n % per_account)
        )
    };
    let pattern =
        std::env::var("AARDVARK_BENCH_PATTERN").unwrap_or_else(|_| COSTLIEST_PATTERN.to_owned());
    let idle_health = one_client(base, |_| "/healthcheck".to_owned()).await;
    let idle_exact = one_client(base, exact).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (stop, url) = (
            stop.clone(),
            format!(
                "{base}/api/1/advisors?count=1&regex={}",
                percent_encoding::utf8_percent_encode(&pattern, percent_encoding::NON_ALPHANUMERIC)
            ),
        );
        attackers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut answered, mut busy, mut latency) = (0u64, 0u64, Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let reply = client.get(&url).send().await.unwrap();
                match reply.status().as_u16() {
                    200 => answered += 1,
                    503 => busy += 1,
                    other => panic!("the pattern was answered {other}"),
                }
                reply.bytes().await.unwrap();
                latency += sent.elapsed();
            }
            (answered, busy, latency)
        }));
    }
    // The attackers' first requests are queued before the victims start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let attacked_health = one_client(base, |_| "/healthcheck".to_owned()).await;
    let attacked_exact = one_client(base, exact).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut answered, mut busy, mut latency) = (0, 0, Duration::ZERO);
    for attacker in attackers {
        let (a, b, l) = attacker.await.unwrap();
        (answered, busy, latency) = (answered + a, busy + b, latency + l);
    }
    println!("  {UNDER_ATTACK} ({CONCURRENCY} clients sending regex={pattern}):");
    for (label, (idle_p50, idle_p99), (p50, p99)) in [
        ("GET /healthcheck", idle_health, attacked_health),
        ("exact ARN (arn=)", idle_exact, attacked_exact),
    ] {
        println!(
            "    {label:<20} alone p50 {idle_p50:>6.2} ms p99 {idle_p99:>6.2} ms; attacked p50 {p50:>6.2} ms p99 {p99:>6.2} ms: p99 {:.2}x",
            p99 / idle_p99
        );
    }
    let attacks = (answered + busy).max(1);
    println!(
        "    the regex: {answered} answered 200, {busy} turned away 503, mean {:.1} ms",
        latency.as_secs_f64() * 1000.0 / attacks as f64
    );
}

/// One run of `accounts` accounts in the run records (every tenth denied by an SCP, every
/// seventh with two failed principals), unless the database has runs already.
async fn ensure_a_run(uri: &str, accounts: u64) {
    use aardvark::collector::aws::Failure;
    use aardvark::collector::report::{AccountReport, AccountStatus, PrincipalFailure};
    use aardvark::db::runs::{RunOwner, RunStatus, RunTotals};
    let db = Database::connect(uri, RENDERING).await.unwrap();
    db.migrate().await.unwrap();
    if !db.recent_runs(1).await.unwrap().is_empty() {
        db.close().await;
        return;
    }
    let run = db.start_run("{}", &RunOwner::this_process()).await.unwrap();
    for i in 0..accounts {
        let id = format!("{:012}", 100_000_000_000 + i);
        let started_at = aardvark::time::stored_now();
        let report = if i % 10 == 3 {
            AccountReport::failed_account(
                &id,
                Some(format!("account-{i}")),
                Failure::new("AccessDenied", format!("User: arn:aws:sts::000000000000:assumed-role/hub/aardvark is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{id}:role/Aardvark with an explicit deny in a service control policy")),
                started_at,
                Duration::from_millis(40),
            )
        } else {
            let mut report = AccountReport::failed_account(
                &id,
                Some(format!("account-{i}")),
                Failure::new("", ""),
                started_at,
                Duration::from_millis(1800),
            );
            report.failure = None;
            report.status = AccountStatus::Ok;
            report.collected = 100;
            if i % 7 == 0 {
                report.status = AccountStatus::Partial;
                report.failed = (0..2)
                    .map(|p| PrincipalFailure {
                        arn: arn(i, p),
                        failure: Failure::new(
                            "JobTimeout",
                            "job was not done after 12 polls in 300 s",
                        ),
                    })
                    .collect();
            }
            report
        };
        db.record_account(run, &report.record()).await.unwrap();
    }
    db.finish_run(run, RunStatus::Partial, &RunTotals::default())
        .await
        .unwrap();
    // The principal whose history is asked for: 50 changes per namespace.
    let mut usage = principal(0, 0);
    for change in 1..=HISTORY_CHANGES {
        for service in &mut usage.services {
            service.last_authenticated = 1_790_000_000_000 + change * 86_400_000;
        }
        db.store_principals(std::slice::from_ref(&usage), WriteOptions::default())
            .await
            .unwrap();
    }
    db.close().await;
}

async fn api_suite(backend: &str, uri: &str, accounts: u64, per_account: u64) {
    // Another build serves a database some build filled, its run included, and must be the
    // first to open it: this build's migrations would be unknown to an older one.
    if std::env::var_os("AARDVARK_BENCH_SERVER").is_none() {
        ensure_a_run(uri, accounts).await;
    }
    let (mut server, base) = serve(uri);
    // The first request waits for the server's directory of principals (read at start, a
    // second or so at 1,000,000): measured apart, not inside the first query kind.
    let started = Instant::now();
    let reply = reqwest::get(format!("{base}/api/1/advisors?count=0"))
        .await
        .unwrap();
    assert!(reply.status().is_success());
    println!(
        "  first request (waits for the directory): {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "API on {backend}, {} principals x {SERVICES} services, {CONCURRENCY} connections:",
        accounts * per_account
    );
    // The reference: what the HTTP stack and this load generator do on this machine when
    // the answer costs nothing.
    let baseline = drive(
        "baseline: GET /healthcheck",
        &base,
        Arc::new(|_| "/healthcheck".to_owned()),
        None,
    )
    .await;
    let total = accounts * per_account;
    let account = move |n: u64| 100_000_000_000 + n % accounts;
    let kinds: [(&str, Query); 11] = [
        (
            "exact ARN (arn=)",
            Arc::new(move |n| {
                format!(
                    "/api/1/advisors?arn={}",
                    arn((n / per_account) % accounts, n % per_account)
                )
            }),
        ),
        (
            "account phrase, count=1000",
            Arc::new(move |n| format!("/api/1/advisors?phrase={:012}&count=1000", account(n))),
        ),
        (
            "unfiltered page of 30",
            Arc::new(move |n| format!("/api/1/advisors?page={}", 1 + n % (total / 30))),
        ),
        (
            "regex, count=100",
            Arc::new(move |n| {
                format!(
                    "/api/1/advisors?regex=arn:aws:iam::{:012}:role/&count=100",
                    account(n)
                )
            }),
        ),
        (
            "accounts, count=1000",
            Arc::new(|_| "/api/1/accounts?count=1000".to_owned()),
        ),
        (
            "the latest run (all accounts)",
            Arc::new(|_| "/api/1/runs/latest".to_owned()),
        ),
        (
            "history of a principal (50 changes x 20 namespaces), count=1000",
            Arc::new(|_| format!("/api/1/history?arn={}&count=1000", arn(0, 0))),
        ),
        (
            "unused access of an account (days=90, count=1000)",
            Arc::new(move |n| format!("/api/1/unused?account={:012}&count=1000", account(n))),
        ),
        (
            "unused-access totals, every account (count=1000)",
            Arc::new(|_| "/api/1/unused/accounts?count=1000".to_owned()),
        ),
        (
            "tracked actions of an account (count=1000)",
            Arc::new(move |n| format!("/api/1/actions?account={:012}&count=1000", account(n))),
        ),
        (
            "combine over an account",
            Arc::new(move |n| {
                format!(
                    "/api/1/advisors?phrase={:012}&combine=true&count=1000",
                    account(n)
                )
            }),
        ),
    ];
    let only = std::env::var("AARDVARK_BENCH_ONLY").unwrap_or_default();
    for (label, query) in kinds {
        if label.contains(only.as_str()) {
            drive(label, &base, query, Some(baseline)).await;
        }
    }
    if UNDER_ATTACK.contains(only.as_str()) {
        under_attack(&base, accounts, per_account).await;
    }
    println!(
        "  server peak RSS {} MB",
        proc_status(server.id(), "VmHWM:") / 1024
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// One number `sql` returns from the database at `url`.
async fn scalar(url: &str, sql: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    value
}

/// Accounts (of `per_account` principals) the history's cost is measured over.
const HISTORY_COST_ACCOUNTS: u64 = 200;

/// What history costs ingest on `backend`: the same batches written into two new databases
/// (made by `fresh`, dropped after), one with the history off and one with it on, in turns
/// batch by batch, so that both meet the same machine; the time spent on each is compared.
async fn history_cost<F, Fut>(backend: &str, per_account: u64, fresh: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut targets = Vec::new();
    for (name, keep_history) in [("history_off", false), ("history_on", true)] {
        let db = Database::connect(&fresh(name.to_owned()).await, RENDERING)
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let options = WriteOptions {
            keep_history,
            ..WriteOptions::default()
        };
        targets.push((db, options, Duration::ZERO));
    }
    let mut batch = Vec::with_capacity(BATCH as usize);
    for account in 0..HISTORY_COST_ACCOUNTS {
        for index in 0..per_account {
            batch.push(principal(account, index));
            if batch.len() as u64 == BATCH
                || (account + 1, index + 1) == (HISTORY_COST_ACCOUNTS, per_account)
            {
                for (db, options, spent) in &mut targets {
                    let started = Instant::now();
                    db.store_principals(&batch, *options).await.unwrap();
                    *spent += started.elapsed();
                }
                batch.clear();
            }
        }
    }
    let rows = (HISTORY_COST_ACCOUNTS * per_account) as f64 * SERVICES as f64;
    let rate = |spent: Duration| rows / spent.as_secs_f64();
    let (without, with) = (rate(targets[0].2), rate(targets[1].2));
    for (db, _, _) in targets {
        db.drop_all().await.unwrap();
        db.close().await;
    }
    println!(
        "history's cost on {backend} ({} principals, batches in turns): {without:.0} service rows/s without, {with:.0} with: {:.1}% of the rate",
        HISTORY_COST_ACCOUNTS * per_account,
        (1.0 - with / without) * 100.0
    );
}

/// Fills a new SQLite database at `path` through the write path, printing ingest figures.
async fn sqlite_ingest(path: &Path, uri: &str, accounts: u64, per_account: u64) {
    let db = Database::connect(uri, RENDERING).await.unwrap();
    db.migrate().await.unwrap();
    let plain = plain_insert(
        &format!("sqlite://{}", path.display()),
        accounts,
        per_account,
    )
    .await;
    println!("baseline: plain INSERTs into SQLite: {plain:.0} rows/s");
    let scratch = path.parent().unwrap().to_path_buf();
    history_cost("SQLite", per_account, |name| {
        let file = scratch.join(format!("{name}.db"));
        async move { format!("sqlite:///{}", file.display()) }
    })
    .await;
    let rate = ingest(&db, 0..accounts, per_account).await;
    println!("ingest into SQLite: {:.0} service rows/s, {:.3} of baseline ({} principals x {SERVICES} services, batches of {BATCH})", rate, rate / plain, accounts * per_account);
    let rate = ingest(&db, 0..50, per_account).await;
    println!("re-ingest into SQLite (every row an update): {rate:.0} service rows/s");
    db.close().await;
    let size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|meta| meta.len())
        .sum();
    println!("SQLite file with its WAL: {} MB", size / 1_000_000);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (accounts, per_account) = (1_000, 100);
    let dir = tempfile::tempdir().unwrap();
    if std::env::var("AARDVARK_BENCH_ONLY").as_deref() == Ok("history-cost") {
        let scratch = dir.path().to_path_buf();
        history_cost("SQLite", per_account, |name| {
            let file = scratch.join(format!("{name}.db"));
            async move { format!("sqlite:///{}", file.display()) }
        })
        .await;
        if args.iter().any(|a| a == "postgres") {
            history_cost("PostgreSQL", per_account, |name| async move {
                postgres_database(&format!("aardvark_bench_{name}"), false)
                    .await
                    .unwrap()
            })
            .await;
        }
        return;
    }
    let kept = std::env::var_os("AARDVARK_BENCH_SQLITE_FILE").map(PathBuf::from);
    let path = kept.unwrap_or_else(|| dir.path().join("api.db"));
    let uri = format!("sqlite:///{}", path.display());
    if path.exists() {
        println!(
            "{} kept from an earlier run: ingest not measured",
            path.display()
        );
    } else {
        sqlite_ingest(&path, &uri, accounts, per_account).await;
    }
    api_suite("SQLite", &uri, accounts, per_account).await;

    if args.iter().any(|a| a == "postgres") {
        let Some(pg) = postgres_database("aardvark_bench", false).await else {
            println!("AARDVARK_TEST_POSTGRES_URL is not set: no PostgreSQL figures");
            return;
        };
        let db = Database::connect(&pg, RENDERING).await.unwrap();
        db.migrate().await.unwrap();
        let plain = plain_insert(&pg, accounts, per_account).await;
        println!("baseline: plain INSERTs into PostgreSQL: {plain:.0} rows/s");
        history_cost("PostgreSQL", per_account, |name| async move {
            postgres_database(&format!("aardvark_bench_{name}"), false)
                .await
                .unwrap()
        })
        .await;
        let rate = ingest(&db, 0..accounts, per_account).await;
        println!(
            "ingest into PostgreSQL: {rate:.0} service rows/s, {:.3} of baseline",
            rate / plain
        );
        db.close().await;
        let size = scalar(&pg, "SELECT pg_database_size(current_database())").await;
        println!("PostgreSQL database size: {} MB", size / 1_000_000);
        api_suite("PostgreSQL", &pg, accounts, per_account).await;
    }
    if args.iter().any(|a| a == "million") {
        // Kept between runs (about 3.3 GB): filling it takes minutes.
        let Some(pg) = postgres_database("aardvark_bench_million", true).await else {
            println!("AARDVARK_TEST_POSTGRES_URL is not set: no PostgreSQL figures");
            return;
        };
        let accounts = 10_000;
        let db = Database::connect(&pg, RENDERING).await.unwrap();
        db.migrate().await.unwrap();
        let have = scalar(&pg, "SELECT COUNT(*) FROM aws_iam_object").await;
        let from = have as u64 / per_account;
        if from < accounts {
            let rate = ingest(&db, from..accounts, per_account).await;
            println!(
                "ingest up to {} principals into PostgreSQL: {rate:.0} service rows/s",
                accounts * per_account
            );
        }
        // Principals stored before their renderings were kept (migration 0006) get them the
        // way an upgraded database does: at the end of the next collection, or by create-db.
        let started = Instant::now();
        let rendered = db.render_missing().await.unwrap();
        if rendered > 0 {
            println!(
                "rendered {rendered} principals stored without renderings in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        db.close().await;
        api_suite("PostgreSQL", &pg, accounts, per_account).await;
    }
}
