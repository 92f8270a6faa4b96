//! Shared collection benchmark: `cargo bench -p aardvark --bench shared` (needs
//! AARDVARK_TEST_POSTGRES_URL and `cargo build --release -p aws-sim`).
//!
//! A rate-bound organisation: 1,000 accounts x 20 principals, aws-sim (a process of its own)
//! answering in 50 ms and allowing 10 requests/s per account, jobs done on their second poll
//! and 2 s after they were generated. Every worker is the release binary, `aardvark update`
//! with `UPDATER_NUM_THREADS=50` and the shipped defaults otherwise, on a fresh PostgreSQL
//! database: first one process without sharing (`COLLECT_SHARED: false`), then one, two and
//! four processes sharing one run (one `update`, the others `update --join`, started first).
//! Each prints its lower bound, the wall time from the run's start to the last worker's end,
//! their ratio, and each worker's accounts; then the cost of sharing: one worker with it
//! against one without. The bound: each of the 50 x W accounts in flight is a slot whose
//! accounts follow one another, and an account's calls cannot go faster than AWS allows
//! (its burst at once, the rest at 10 requests/s), so the run takes at least its accounts'
//! calls spread over the slots, plus the last job's time and a call's latency.
//! AARDVARK_BENCH_ACCOUNTS changes the accounts (e.g. 200 for a quick look).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sim::{RateLimit, Scenario};
use common::{calls_per_account, postgres_database, proc_status, slots_bound, SimProcess};

const THREADS: usize = 50;
const RATE: f64 = 10.0;
const LATENCY_MS: u64 = 50;
const JOB_MS: u64 = 2000;
/// AWS's burst per account: calls it answers at once before its rate applies.
const BURST: u32 = 10;

/// What a child writes to stderr, gathered by a thread of its own.
fn gathered(mut pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
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

struct Worker {
    child: Child,
    stderr: Arc<Mutex<String>>,
    peak_rss_kb: u64,
}

/// `aardvark update` (or `update --join`) with the settings file in `dir`, AWS at `sim`.
fn worker(dir: &std::path::Path, sim: &SimProcess, join: bool) -> Worker {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aardvark"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AARDVARK_") || key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", &sim.url)
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCH")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .args(["--log-format", "json", "update"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if join {
        command.arg("--join");
    }
    let mut child = command.spawn().expect("the aardvark binary starts");
    let stderr = gathered(child.stderr.take().unwrap());
    Worker {
        child,
        stderr,
        peak_rss_kb: 0,
    }
}

impl Worker {
    fn logged(&self, text: &str) -> bool {
        self.stderr.lock().unwrap().contains(text)
    }
}

/// Runs one case: `workers` processes (0: one without sharing); the wall time.
async fn run(scenario: &Scenario, workers: usize, lower_bound: f64) -> f64 {
    let url = postgres_database("aardvark_bench_shared", false)
        .await
        .expect("AARDVARK_TEST_POSTGRES_URL is set");
    let dir = tempfile::tempdir().unwrap();
    let accounts: Vec<String> = scenario
        .account_ids()
        .iter()
        .map(|id| format!("'{id}'"))
        .collect();
    let shared = if workers == 0 { "false" } else { "true" };
    std::fs::write(
        dir.path().join("settings.yaml"),
        format!(
            "default:\n  SQLALCHEMY_DATABASE_URI: {url}\n  ACCOUNTS: [{}]\n  UPDATER_NUM_THREADS: {THREADS}\n  COLLECT_SHARED: {shared}\n",
            accounts.join(", ")
        ),
    )
    .unwrap();
    let sim = SimProcess::start(scenario, dir.path());
    let created = Command::new(env!("CARGO_BIN_EXE_aardvark"))
        .current_dir(dir.path())
        .args(["-q", "create-db"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(created.success());
    let mut joiners: Vec<Worker> = (1..workers.max(1))
        .map(|_| worker(dir.path(), &sim, true))
        .collect();
    // The joiners wait for the run before it starts, as servers would.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !joiners
        .iter()
        .all(|w| w.logged("no shared run in progress"))
    {
        assert!(Instant::now() < deadline, "the joiners did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let mut all = vec![worker(dir.path(), &sim, false)];
    all.append(&mut joiners);
    loop {
        let mut running = 0;
        for worker in &mut all {
            if worker.child.try_wait().unwrap().is_none() {
                running += 1;
                worker.peak_rss_kb = worker
                    .peak_rss_kb
                    .max(proc_status(worker.child.id(), "VmHWM:"));
            }
        }
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let served = sim.stop();
    // What the run recorded: its status, and each worker's accounts.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (status, principals): (String, i64) = sqlx::query_as(
        "SELECT status, CAST(principals_collected AS BIGINT) FROM aardvark_runs ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let per_worker: BTreeMap<i64, i64> = sqlx::query_as(
        "SELECT CAST(worker_pid AS BIGINT), CAST(COUNT(*) AS BIGINT) FROM aardvark_run_accounts GROUP BY worker_pid",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    pool.close().await;
    let label = match workers {
        0 => "1 process, sharing off (COLLECT_SHARED: false)".to_owned(),
        1 => "1 worker, sharing on".to_owned(),
        n => format!("{n} workers sharing one run"),
    };
    println!(
        "  {label}: lower bound {lower_bound:.2} s, wall {wall:.2} s, ratio {:.3}",
        wall / lower_bound
    );
    let peaks: Vec<String> = all
        .iter()
        .map(|w| format!("{} MB", w.peak_rss_kb / 1024))
        .collect();
    println!(
        "    run {status}, {principals} principals; accounts per worker {:?}; peak RSS per worker {}; simulator: {served}",
        per_worker.values().collect::<Vec<_>>(),
        peaks.join(", ")
    );
    for worker in &all {
        if worker.logged("\"level\":\"ERROR\"") {
            println!("    a worker logged errors");
        }
    }
    wall
}

#[tokio::main]
async fn main() {
    if std::env::var("AARDVARK_TEST_POSTGRES_URL").is_err() {
        eprintln!("AARDVARK_TEST_POSTGRES_URL is not set: the shared benchmark needs PostgreSQL");
        return;
    }
    let accounts: u32 = std::env::var("AARDVARK_BENCH_ACCOUNTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let mut scenario = Scenario::generated(2026, accounts, 20);
    scenario.defaults.latency_ms = LATENCY_MS;
    scenario.defaults.job_polls = Some(2);
    scenario.defaults.job_ms = Some(JOB_MS);
    scenario.defaults.rate_limit = Some(RateLimit {
        per_second: RATE,
        burst: BURST,
    });
    let (calls, principals) = calls_per_account(&scenario, true);
    let tail = (JOB_MS + LATENCY_MS) as f64 / 1000.0;
    println!(
        "shared collection {accounts}x20 (P={principals}), latency {LATENCY_MS} ms, {RATE}/s per account, jobs done on poll 2 and after {JOB_MS} ms, UPDATER_NUM_THREADS={THREADS} per worker, {calls:.0} calls per account:"
    );
    let bound = |workers: usize| slots_bound(accounts, THREADS * workers, calls, BURST, RATE, tail);
    let alone = run(&scenario, 0, bound(1)).await;
    let mut one_shared = 0.0;
    for workers in [1, 2, 4] {
        let wall = run(&scenario, workers, bound(workers)).await;
        if workers == 1 {
            one_shared = wall;
        }
    }
    println!(
        "  cost of sharing: one worker {one_shared:.2} s with, {alone:.2} s without: {:+.1}% wall time",
        100.0 * (one_shared / alone - 1.0)
    );
}
