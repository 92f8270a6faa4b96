//! One run shared by several processes through PostgreSQL, the binary end to end: three
//! workers collect 300 accounts exactly once between them; a worker killed with SIGKILL has its
//! accounts collected again by the others once its leases expire; a PostgreSQL restart in the
//! middle of a run is waited out; a worker stalled past its lease (SIGSTOP, SIGCONT) stops
//! before it writes, and its replacement's result is the one stored; a worker asked to stop gives
//! its accounts back to the others. `update --join` on SQLite
//! says why it cannot and exits 1. The tests of this file take turns: one restarts PostgreSQL.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aardvark::db::runs::RunStatus;
use aws_sim::{Scenario, SimHandle};
use common::{assert_same, fresh_db, gathered, stored, Backend, TestDb};

const DEADLINE: Duration = Duration::from_secs(180);

/// One test at a time: a PostgreSQL restart would fail the others.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An `aardvark update` process (starting a run, or `--join`ing one), its output gathered.
struct Worker {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn start(sim: &SimHandle, db: &TestDb, settings: &str, join: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = common::aardvark_against(dir.path(), sim, db, settings);
        command.args(["--log-format", "json", "update"]);
        if join {
            command.arg("--join");
        }
        let mut child = command.spawn().unwrap();
        Self {
            stdout: gathered(child.stdout.take().unwrap()),
            stderr: gathered(child.stderr.take().unwrap()),
            child,
            _dir: dir,
        }
    }

    fn pid(&self) -> i64 {
        i64::from(self.child.id())
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits, with the deadline, for the process to end; its exit code.
    async fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not end: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to end with exit code 0 and prints its summary.
    async fn ends_ok(&mut self) -> String {
        let code = self.exit_code().await;
        let stdout = self.stdout.lock().unwrap().clone();
        assert_eq!(code, Some(0), "{stdout}\n{}", self.stderr());
        stdout
    }

    /// Waits, with the deadline, until stderr holds `text`.
    async fn until_logged(&self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} was not logged: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `accounts` accounts of `principals` principals, `latency_ms` a call.
fn scenario(accounts: u32, principals: u32, latency_ms: u64) -> Scenario {
    let mut scenario = Scenario::generated(28, accounts, principals);
    scenario.defaults.latency_ms = latency_ms;
    scenario
}

/// A number the test's own connection reads; `None` while the database cannot answer.
async fn number(db: &TestDb, sql: &str) -> Option<i64> {
    let pool = sqlx::AnyPool::connect(&db.sqlx_url()).await.ok()?;
    let value = sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&pool)
        .await
        .ok();
    pool.close().await;
    value
}

/// Waits, with the deadline, until `sql` reads at least `at_least`.
async fn until_number(db: &TestDb, sql: &str, at_least: i64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if number(db, sql).await.is_some_and(|n| n >= at_least) {
            return;
        }
        assert!(Instant::now() < deadline, "never {at_least} of {sql}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts the accounts `pid` holds a claim on (SQL, for `until_number`).
fn claimed_by(pid: i64) -> String {
    format!("SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_run_work WHERE state = 'claimed' AND worker_pid = {pid}")
}

/// The accounts of the run's work that `pid` holds and that match `condition`.
async fn accounts_of(db: &TestDb, pid: i64, condition: &str) -> BTreeSet<String> {
    db.strings(&format!(
        "SELECT account_id FROM aardvark_run_work WHERE worker_pid = {pid} AND {condition}"
    ))
    .await
    .into_iter()
    .collect()
}

/// The one run of `db`, ended `ok` with every account of `sim` recorded once: each account's
/// record, by id.
async fn one_ok_run(
    db: &TestDb,
    sim: &SimHandle,
) -> BTreeMap<String, aardvark::db::runs::AccountRecord> {
    let runs = db.db.recent_runs(10).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Ok, "{run:#?}");
    assert_eq!(run.totals.accounts_total, sim.account_ids().len() as i64);
    assert_eq!(
        run.totals.principals_collected,
        sim.expected().len() as i64,
        "{run:#?}"
    );
    let records = db.db.run_accounts(run.id).await.unwrap();
    let by_account: BTreeMap<String, _> = records
        .iter()
        .map(|record| (record.account_id.clone(), record.clone()))
        .collect();
    assert_eq!(by_account.len(), records.len(), "an account recorded twice");
    let expected: BTreeSet<&String> = sim.account_ids().iter().collect();
    assert_eq!(by_account.keys().collect::<BTreeSet<_>>(), expected);
    assert_same(&stored(&db.db).await, sim.expected());
    by_account
}

/// How many accounts each worker pid recorded.
fn accounts_per_worker(
    records: &BTreeMap<String, aardvark::db::runs::AccountRecord>,
) -> BTreeMap<i64, usize> {
    let mut counts = BTreeMap::new();
    for record in records.values() {
        *counts
            .entry(record.worker_pid.expect("a worker recorded"))
            .or_default() += 1;
    }
    counts
}

/// Each account's principals were listed once: no account was collected twice.
fn listed_once(sim: &SimHandle) {
    let stats = sim.stats();
    for account in sim.account_ids() {
        assert_eq!(stats.calls_of(account, "ListRoles"), 1, "account {account}");
    }
}

const WORKER_SETTINGS: &str = "  UPDATER_ACCOUNT_RATE_LIMIT: 0\n  UPDATER_NUM_THREADS: 10\n";

/// Three processes, one run of 300 accounts: each account collected once, by one of them; each
/// collected some; the run is one record whose counts are the simulator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_one_run_exactly_once() {
    let _turn = TURN.lock().await;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let sim = aws_sim::start(scenario(300, 3, 15)).await.unwrap();
    let mut joiners = [
        Worker::start(&sim, &db, WORKER_SETTINGS, true),
        Worker::start(&sim, &db, WORKER_SETTINGS, true),
    ];
    for joiner in &joiners {
        joiner.until_logged("no shared run in progress").await;
    }
    let mut starter = Worker::start(&sim, &db, WORKER_SETTINGS, false);
    let summary = starter.ends_ok().await;
    for joiner in &mut joiners {
        assert_eq!(joiner.ends_ok().await, summary, "one run, one summary");
    }
    let records = one_ok_run(&db, &sim).await;
    listed_once(&sim);
    let per_worker = accounts_per_worker(&records);
    let pids: BTreeSet<i64> = [starter.pid(), joiners[0].pid(), joiners[1].pid()].into();
    assert_eq!(
        per_worker.keys().copied().collect::<BTreeSet<_>>(),
        pids,
        "{per_worker:?}"
    );
    assert!(records.values().all(|record| record.attempts == 1));
}

/// A worker killed with SIGKILL in the middle: the others collect its accounts again once its
/// leases expire, the run ends `ok` with the data exact, and those accounts show two attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_accounts_are_collected_again() {
    let _turn = TURN.lock().await;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let sim = aws_sim::start(scenario(60, 12, 20)).await.unwrap();
    let settings = format!("{WORKER_SETTINGS}  COLLECT_LEASE_SECONDS: 3\n");
    let mut doomed = Worker::start(&sim, &db, &settings, false);
    until_number(&db, &claimed_by(doomed.pid()), 5).await;
    let mut other = Worker::start(&sim, &db, &settings, true);
    other.until_logged("joined the shared run").await;
    doomed.child.kill().unwrap(); // SIGKILL: its leases are all it leaves
    doomed.child.wait().unwrap();
    let orphaned = accounts_of(&db, doomed.pid(), "state = 'claimed'").await;
    assert!(!orphaned.is_empty());
    other.ends_ok().await;
    let records = one_ok_run(&db, &sim).await;
    for (account, record) in &records {
        if orphaned.contains(account) {
            assert_eq!(record.attempts, 2, "{record:#?}");
            assert_eq!(record.worker_pid, Some(other.pid()), "{record:#?}");
        } else {
            assert_eq!(record.attempts, 1, "{record:#?}");
        }
    }
}

/// PostgreSQL restarted while two workers collect: they wait it out, renew their leases and
/// finish; the run ends `ok`, exact, and no account was collected twice (so never by two
/// workers at once). Skipped, with a note, where this process cannot restart the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_is_waited_out() {
    let _turn = TURN.lock().await;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let Some(cluster) = local_cluster(&db) else {
        eprintln!("note: PostgreSQL is not a local cluster this process may restart; skipping");
        return;
    };
    let sim = aws_sim::start(scenario(40, 20, 20)).await.unwrap();
    let mut starter = Worker::start(&sim, &db, WORKER_SETTINGS, false);
    let mut joiner = Worker::start(&sim, &db, WORKER_SETTINGS, true);
    joiner.until_logged("joined the shared run").await;
    until_number(
        &db,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM aws_iam_object",
        100,
    )
    .await;
    let started = "SELECT CAST(EXTRACT(EPOCH FROM pg_postmaster_start_time()) * 1000 AS BIGINT)";
    let before = number(&db, started).await.unwrap();
    let restarted = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster, "main", "restart"])
        .status()
        .unwrap();
    assert!(restarted.success(), "pg_ctlcluster restart failed");
    starter.ends_ok().await;
    joiner.ends_ok().await;
    assert_ne!(number(&db, started).await, Some(before), "not restarted");
    one_ok_run(&db, &sim).await;
    listed_once(&sim);
}

/// The version of the local PostgreSQL cluster `db` is on, when this process may restart it
/// (`pg_ctlcluster` is here, and the server is on this machine).
fn local_cluster(db: &TestDb) -> Option<String> {
    let local = db.uri.contains("@127.0.0.1") || db.uri.contains("@localhost");
    let versions = std::fs::read_dir("/etc/postgresql").ok()?;
    let version = versions
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()?;
    let can = std::process::Command::new("pg_ctlcluster")
        .arg("--help")
        .output()
        .is_ok_and(|output| output.status.success());
    (local && can && Path::new("/proc/self").exists()).then_some(version)
}

/// A worker stopped (SIGSTOP) past its lease, then continued: another worker collected its
/// accounts meanwhile; the stalled one notices before it writes and stops those accounts, and
/// the records are the new claimant's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_stops_before_writing() {
    let _turn = TURN.lock().await;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let mut scenario = scenario(30, 20, 10);
    scenario.defaults.rate_limit = Some(aws_sim::RateLimit {
        per_second: 20.0,
        burst: 5,
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let settings = "  UPDATER_ACCOUNT_RATE_LIMIT: 20\n  UPDATER_ACCOUNT_BURST: 5\n  UPDATER_NUM_THREADS: 5\n  COLLECT_LEASE_SECONDS: 2\n";
    let mut stalled = Worker::start(&sim, &db, settings, false);
    until_number(&db, &claimed_by(stalled.pid()), 5).await;
    let mut other = Worker::start(&sim, &db, settings, true);
    other.until_logged("joined the shared run").await;
    stalled.signal("-STOP");
    // Its accounts are the other's once their leases expired.
    let taken = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM aardvark_run_work WHERE attempts > 1 AND worker_pid = {}",
        other.pid()
    );
    until_number(&db, &taken, 1).await;
    let retaken = accounts_of(&db, other.pid(), "attempts > 1").await;
    stalled.signal("-CONT");
    stalled.ends_ok().await;
    other.ends_ok().await;
    assert!(
        stalled
            .stderr()
            .contains("this worker's lease on the account expired"),
        "{}",
        stalled.stderr()
    );
    let records = one_ok_run(&db, &sim).await;
    for account in &retaken {
        let record = &records[account];
        assert_eq!(record.worker_pid, Some(other.pid()), "{record:#?}");
        assert!(record.attempts > 1, "{record:#?}");
    }
}

/// A worker asked to stop (SIGTERM: a rolling deployment) while another works on the run gives
/// its unfinished accounts back; the other collects them, and the run ends `ok`, exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_gives_its_accounts_back() {
    let _turn = TURN.lock().await;
    let Some(db) = fresh_db(Backend::Postgres).await else {
        return;
    };
    let sim = aws_sim::start(scenario(60, 12, 20)).await.unwrap();
    let mut leaving = Worker::start(&sim, &db, WORKER_SETTINGS, false);
    until_number(&db, &claimed_by(leaving.pid()), 5).await;
    let mut staying = Worker::start(&sim, &db, WORKER_SETTINGS, true);
    staying.until_logged("joined the shared run").await;
    until_number(&db, &claimed_by(staying.pid()), 1).await;
    leaving.signal("-TERM");
    // Its own part was interrupted: exit 1, as a stopped `update`.
    assert_eq!(leaving.exit_code().await, Some(1), "{}", leaving.stderr());
    assert!(
        leaving.stderr().contains("given back to the other workers"),
        "{}",
        leaving.stderr()
    );
    staying.ends_ok().await;
    let records = one_ok_run(&db, &sim).await;
    let per_worker = accounts_per_worker(&records);
    assert!(per_worker.contains_key(&staying.pid()), "{per_worker:?}");
    assert!(records
        .values()
        .any(|record| record.attempts == 2 && record.worker_pid == Some(staying.pid())));
}

/// On SQLite one process collects: `update --join` says so and exits 1.
#[tokio::test]
async fn join_on_sqlite_exits_1_saying_why() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(scenario(1, 1, 0)).await.unwrap();
    let mut worker = Worker::start(&sim, &db, "", true);
    assert_eq!(worker.exit_code().await, Some(1));
    let stderr = worker.stderr();
    assert!(stderr.contains("update --join"), "{stderr}");
    assert!(stderr.contains("SQLite"), "{stderr}");
}
