//! What the benchmarks share: a process's status fields and CPU time from /proc, a fresh
//! PostgreSQL database, the simulator as a process of its own, and the calls an account of a
//! generated scenario costs. Each benchmark uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A `/proc/PID/status` field in kB, 0 when unreadable.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second of /proc's CPU times.
const TICKS: f64 = 100.0;

/// User + system CPU seconds of a process.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS
}

/// A PostgreSQL database `name` on AARDVARK_TEST_POSTGRES_URL's server: a fresh one, or with
/// `keep` the one a previous run left; `None` without the variable.
pub async fn postgres_database(name: &str, keep: bool) -> Option<String> {
    let admin = std::env::var("AARDVARK_TEST_POSTGRES_URL").ok()?;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&pool)
        .await
        .unwrap();
    if exists.is_some() && !keep {
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&pool)
            .await
            .unwrap();
    }
    if exists.is_none() || !keep {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let base = admin.split('?').next().unwrap();
    Some(format!("{}/{name}", base.rsplit_once('/').unwrap().0))
}

/// The release build of aws-sim serving a scenario, as a process of its own (so that its CPU
/// and memory are measured apart).
pub struct SimProcess {
    pub child: Child,
    pub url: String,
    lines: Lines<BufReader<ChildStdout>>,
}

impl SimProcess {
    /// Serves `scenario`, written to a file in `dir`.
    pub fn start(scenario: &aws_sim::Scenario, dir: &std::path::Path) -> Self {
        let scenario_file = dir.join("scenario.yaml");
        std::fs::write(&scenario_file, yaml_serde::to_string(scenario).unwrap()).unwrap();
        let binary =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/aws-sim");
        let mut child = Command::new(&binary)
            .args(["--scenario", scenario_file.to_str().unwrap(), "--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {} (cargo build --release -p aws-sim): {err}",
                    binary.display()
                )
            });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .next()
            .unwrap()
            .unwrap()
            .trim_start_matches("aws-sim listening on ")
            .to_owned();
        Self { child, url, lines }
    }

    /// Stops the simulator; what it says it served (`served N requests ...`).
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let served = self
            .lines
            .find_map(|line| line.ok().filter(|l| l.starts_with("served")))
            .unwrap_or_default();
        let _ = self.child.wait();
        served
    }
}

/// The calls an account of a generated scenario costs at least, and its principals: the four
/// listings; with `identity`, one page of authorization details, the credential report
/// generated (`STARTED`, then `COMPLETE`) and read, and one `ListAccessKeys` per user with a
/// key; two calls per principal and one more for each poll before its job is done.
pub fn calls_per_account(scenario: &aws_sim::Scenario, identity: bool) -> (f64, f64) {
    let world = scenario.world().unwrap();
    let first = &world[0].principals;
    let with_keys = first
        .iter()
        .filter(|p| !p.identity.access_keys.is_empty())
        .count();
    let identity_calls = if identity {
        4.0 + with_keys as f64
    } else {
        0.0
    };
    let principals = first.len() as f64;
    let polls = f64::from(scenario.defaults.job_polls.unwrap_or(1));
    (
        4.0 + identity_calls + 2.0 * principals + (polls - 1.0) * principals,
        principals,
    )
}

/// The least time `accounts` take when `in_flight` are collected at once, more accounts than
/// that: each of the `in_flight` slots collects its accounts one after another, an account's
/// `calls` going no faster than AWS allows (`burst` at once, the rest at `rate` a second), and
/// the last account's job (`tail`: its time and a call's latency) ends the run.
pub fn slots_bound(
    accounts: u32,
    in_flight: usize,
    calls: f64,
    burst: u32,
    rate: f64,
    tail: f64,
) -> f64 {
    f64::from(accounts) / in_flight as f64 * (calls - f64::from(burst)) / rate + tail
}
