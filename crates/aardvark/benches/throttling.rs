//! Throttling benchmark: `cargo bench -p aardvark --bench throttling`.
//!
//! How accounts that AWS throttles fare beside their neighbours, the simulator in-process:
//! 1. `aardvark demo`'s collection (its scenario and settings): three of its accounts are
//!    limited to 4 requests/s where the collector paces at 20. Printed: the whole collection's
//!    wall time, and each limited account's time against what 4 requests/s allow for the calls
//!    AWS answered it.
//! 2. 40 accounts x 50 principals at the shipped defaults (50 ms a call, AWS's limit 100/s, so
//!    the pacer is the brake), every other account throttled on its first two calls. Printed:
//!    the mean account time of each half and their ratio.
//!
//! `AARDVARK_BENCH_BEFORE=/path/to/an/older/aardvark` also times that build's `aardvark demo`
//! collection (the line it prints: `run N finished in S s`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aardvark::api::wire::RENDERING;
use aardvark::cli::demo;
use aardvark::collector::progress::Progress;
use aardvark::collector::report::RunReport;
use aardvark::collector::{Collector, UpdateRequest};
use aardvark::config::{AccountSource, Settings};
use aardvark::db::Database;
use aws_sim::{AccountFaults, Burst, RateLimit, Scenario, SimHandle};

/// Collects every account of `sim` into a fresh SQLite file; the run's report and wall time.
async fn collect(sim: &SimHandle, settings: Settings) -> (RunReport, f64) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        database_uri: format!("sqlite:///{}", dir.path().join("bench.db").display()),
        ..settings
    };
    let db = Database::connect(&settings.database_uri, RENDERING)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let collector = Collector::new(settings, db.clone(), demo::overrides(sim)).await;
    let started = Instant::now();
    let report = collector
        .run(&UpdateRequest::default(), Progress::logs())
        .await
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    db.close().await;
    (report, wall)
}

fn seconds(report: &RunReport, account: &str) -> f64 {
    report
        .account(account)
        .map_or(f64::NAN, |a| a.duration.as_secs_f64())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

async fn demo_collection() {
    let scenario = Scenario::demo();
    let limited: Vec<(String, RateLimit)> = scenario
        .account_faults
        .iter()
        .filter_map(|(id, faults)| Some((id.clone(), faults.rate_limit?)))
        .collect();
    let sim = aws_sim::start(scenario).await.unwrap();
    let mut settings = Settings::default();
    demo::collection_settings(&mut settings, &sim);
    let (report, wall) = collect(&sim, settings).await;
    let stats = sim.stats();
    println!("aardvark demo's collection: {wall:.2} s");
    for (account, limit) in &limited {
        let throttled = stats.throttles.get(account).copied().unwrap_or(0);
        let answered = stats.calls_in(account) - throttled;
        let allowed = answered as f64 / limit.per_second;
        let took = seconds(&report, account);
        println!(
            "  {account} (AWS allows {}/s): {took:.2} s for {answered} calls answered ({throttled} throttled); {}/s allow them in {allowed:.2} s: ratio {:.2}",
            limit.per_second,
            limit.per_second,
            took / allowed
        );
    }
    let others: Vec<f64> = report
        .accounts
        .iter()
        .filter(|a| a.collected > 0 && !limited.iter().any(|(id, _)| *id == a.id))
        .map(|a| a.duration.as_secs_f64())
        .collect();
    println!(
        "  {} other accounts with data: {:.2} s on average",
        others.len(),
        mean(&others)
    );
    sim.shutdown().await;
}

async fn throttled_at_start() {
    let mut scenario = Scenario::generated(2027, 40, 50);
    scenario.defaults.latency_ms = 50;
    scenario.defaults.rate_limit = Some(RateLimit {
        per_second: 100.0,
        burst: 100,
    });
    let ids = scenario.account_ids();
    let throttled: Vec<String> = ids.iter().step_by(2).cloned().collect();
    for id in &throttled {
        let faults = AccountFaults {
            throttles: Some(Burst {
                first: 2,
                every: 0,
                status: None,
            }),
            ..scenario.defaults.clone()
        };
        scenario = scenario.with_account_faults(id, faults);
    }
    let sim = aws_sim::start(scenario).await.unwrap();
    // The shipped defaults: only where the accounts are is set.
    let settings = Settings {
        account_source: AccountSource::Static,
        accounts: ids.clone(),
        ..Settings::default()
    };
    let (report, wall) = collect(&sim, settings).await;
    if report.exit_code() != 0 {
        print!("  not everything was collected:\n{}", report.summary());
    }
    let (hit, spared): (Vec<f64>, Vec<f64>) = {
        let hit = throttled.iter().map(|id| seconds(&report, id)).collect();
        let spared = ids
            .iter()
            .filter(|id| !throttled.contains(id))
            .map(|id| seconds(&report, id))
            .collect();
        (hit, spared)
    };
    println!(
        "40 x 50 at the shipped defaults, 20 accounts throttled on their first two calls: {wall:.2} s; throttled accounts {:.2} s on average, the others {:.2} s: ratio {:.2}",
        mean(&hit),
        mean(&spared),
        mean(&hit) / mean(&spared)
    );
    sim.shutdown().await;
}

/// The collection time an older build's `aardvark demo` prints.
fn demo_before(binary: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args(["demo", "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
    let started = Instant::now();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let finished = lines
        .map_while(Result::ok)
        .find(|line| line.contains(" finished in "));
    let _ = child.kill();
    let _ = child.wait();
    match finished {
        Some(line) => println!("before ({binary}) aardvark demo: {line}"),
        None => println!(
            "before ({binary}): no run line after {:?}",
            started.elapsed().min(Duration::from_secs(3_600))
        ),
    }
}

#[tokio::main]
async fn main() {
    if let Ok(before) = std::env::var("AARDVARK_BENCH_BEFORE") {
        demo_before(&before);
    }
    demo_collection().await;
    throttled_at_start().await;
}
