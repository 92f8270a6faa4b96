//! Collection benchmark: `cargo bench -p aardvark --bench collection [-- all | ten-thousand]`.
//!
//! The simulator runs as its own process (so the collector's and the simulator's CPU and memory
//! are measured apart); the collector runs in this process into a fresh SQLite file. Each
//! scenario prints its lower bound (behaviour section 8 (docs/behaviour.md)), the wall time and their ratio, calls
//! per second, throttles, CPU seconds and peak RSS of both sides. `all` adds 1,000 x 100;
//! `ten-thousand` runs only 10,000 x 20 with the shipped defaults, then serves what it stored
//! with the release binary and times `/api/1/accounts?count=1000` and the runs endpoints;
//! AARDVARK_BENCH_ONLY=1000x100 runs only the scenarios of that size (another size, alone, with
//! every account at once);
//! AARDVARK_BENCH_GRANULARITY=service collects at service level instead of the default.
//! At 200 x 50 the same run without identity details (`UPDATER_IDENTITY_DETAILS: false`)
//! follows, and what they add to the wall time is printed.

mod common;

use common::{cpu_seconds, proc_status, SimProcess};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use aardvark::api::wire::RENDERING;
use aardvark::collector::aws::AwsOverrides;
use aardvark::collector::progress::Progress;
use aardvark::collector::{Collector, UpdateRequest};
use aardvark::config::{AccountSource, Settings};
use aardvark::db::Database;
use aws_sdk_sts::config::Credentials;
use aws_sim::{RateLimit, Scenario};

// The shipped binary's allocator (src/main.rs says why): the collector runs in this process,
// and without it glibc's malloc would be measured instead (about a fifth of the collector's
// samples in a profile at 200 x 50 were in its malloc and free); `--features system-allocator`
// measures glibc's, for heaptrack.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy)]
struct Case {
    accounts: u32,
    principals: u32,
    latency_ms: u64,
    rate: f64,
    burst: u32,
    /// Jobs are done on this poll ...
    job_polls: u32,
    /// ... and this long after they were generated.
    job_ms: u64,
    /// `UPDATER_NUM_THREADS`, when not the shipped default.
    threads: Option<usize>,
    /// `UPDATER_IDENTITY_DETAILS: false`: the baseline of what identity details cost.
    without_identity: bool,
    /// After the collection, the release server on its database: how fast the accounts and
    /// runs endpoints page through it.
    serve_after: bool,
}

/// Runs one case; returns its wall time.
async fn run(case: &Case) -> f64 {
    let mut scenario = Scenario::generated(2026, case.accounts, case.principals);
    scenario.defaults.latency_ms = case.latency_ms;
    scenario.defaults.job_polls = Some(case.job_polls);
    scenario.defaults.job_ms = Some(case.job_ms);
    scenario.defaults.rate_limit = Some(RateLimit {
        per_second: case.rate,
        burst: case.burst,
    });
    // The scenario's world is dropped at once: the collector's memory is what is measured.
    let (calls_per_account, principals_per_account) =
        common::calls_per_account(&scenario, !case.without_identity);
    let tail = (case.job_ms + case.latency_ms) as f64 / 1000.0;
    // Every account at once: its calls at the rate, then its last job. More accounts than
    // UPDATER_NUM_THREADS: slots that collect accounts one after another.
    let threads = case
        .threads
        .unwrap_or(Settings::default().updater_num_threads);
    let lower_bound = if case.accounts as usize > threads {
        common::slots_bound(
            case.accounts,
            threads,
            calls_per_account,
            case.burst,
            case.rate,
            tail,
        )
    } else {
        calls_per_account / case.rate + tail
    };

    let dir = tempfile::tempdir().unwrap();
    let accounts = scenario.account_ids();
    let sim = SimProcess::start(&scenario, dir.path());
    drop(scenario);

    let uri = format!("sqlite:///{}", dir.path().join("bench.db").display());
    let db = Database::connect(&uri, RENDERING).await.unwrap();
    db.migrate().await.unwrap();
    // The shipped defaults: only where the accounts and the database are is set.
    let mut settings = Settings {
        database_uri: uri.clone(),
        account_source: AccountSource::Static,
        accounts,
        ..Settings::default()
    };
    if let Some(threads) = case.threads {
        settings.updater_num_threads = threads;
    }
    settings.updater_identity_details = !case.without_identity;
    // AARDVARK_BENCH_GRANULARITY=service measures service-level jobs beside the default.
    if let Ok(name) = std::env::var("AARDVARK_BENCH_GRANULARITY") {
        settings.updater_granularity = match name.as_str() {
            "service" => aardvark::config::Granularity::Service,
            "action" => aardvark::config::Granularity::Action,
            other => panic!("AARDVARK_BENCH_GRANULARITY is action or service, not {other:?}"),
        };
        println!("  (UPDATER_GRANULARITY {name}, not the default)");
    }
    let overrides = AwsOverrides {
        endpoint_url: Some(sim.url.clone()),
        credentials: Some(Credentials::new("AKIDBENCH", "bench", None, None, "bench")),
    };
    let collector = Collector::new(settings, db.clone(), overrides).await;
    let me = std::process::id();
    // Peak RSS from here on: "5" resets the kernel's high-water mark (VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_status(me, "VmRSS:");
    let (cpu_before, sim_cpu_before) = (cpu_seconds(me), cpu_seconds(sim.child.id()));
    let started = Instant::now();
    let report = collector
        .run(&UpdateRequest::default(), Progress::logs())
        .await
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let (cpu, sim_cpu) = (
        cpu_seconds(me) - cpu_before,
        cpu_seconds(sim.child.id()) - sim_cpu_before,
    );
    let sim_rss = proc_status(sim.child.id(), "VmHWM:");
    let served = sim.stop();
    let calls = case.accounts as f64 * calls_per_account;
    let mut threads = case
        .threads
        .map(|n| format!(", UPDATER_NUM_THREADS={n}"))
        .unwrap_or_default();
    if case.without_identity {
        threads.push_str(", UPDATER_IDENTITY_DETAILS=false (baseline)");
    }
    println!(
        "collection {}x{} (P={principals_per_account}), latency {} ms, {}/s burst {}, jobs done on poll {} and after {} ms, shipped defaults{threads}:",
        case.accounts, case.principals, case.latency_ms, case.rate, case.burst, case.job_polls, case.job_ms
    );
    println!(
        "  lower bound {lower_bound:.2} s, wall {wall:.2} s, ratio {:.3}",
        wall / lower_bound
    );
    let requests: f64 = served
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(calls);
    println!(
        "  {} principals collected ({:.1}/s), {} failed; {calls:.0} calls needed, {requests:.0} made, {:.0} calls/s; simulator: {served}",
        report.principals_collected(),
        report.principals_collected() as f64 / wall,
        report.principals_failed(),
        requests / wall
    );
    println!(
        "  collector CPU {cpu:.1} s ({:.0}% of one core, {:.3} ms per call), peak RSS {} MB ({} MB before the run); simulator CPU {sim_cpu:.1} s, peak RSS {} MB",
        100.0 * cpu / wall,
        1000.0 * cpu / requests,
        proc_status(me, "VmHWM:") / 1024,
        rss_before / 1024,
        sim_rss / 1024
    );
    if report.exit_code() != 0 {
        print!("  not everything was collected:\n{}", report.summary());
    }
    db.close().await;
    if case.serve_after {
        endpoints(&uri, report.run_id).await;
    }
    wall
}

/// Serves the database at `uri` with the release binary and times the operator's endpoints
/// over it, one request at a time: every page of `/api/1/accounts?count=1000` and of the
/// run's accounts, the run's record with every account at once, and the runs list.
async fn endpoints(uri: &str, run_id: i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_aardvark"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AARDVARK_") {
            command.env_remove(key);
        }
    }
    let mut server = command
        .current_dir(dir.path())
        .env("AARDVARK_DATABASE_URI", uri)
        .args(["-q", "serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = BufReader::new(server.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let url = line.strip_prefix("serving on ")?;
            Some(
                url.split_whitespace()
                    .next()?
                    .trim_end_matches('/')
                    .to_owned(),
            )
        })
        .expect("the server says where it serves");
    let client = reqwest::Client::new();
    let pages: Vec<String> = (1..=10)
        .map(|page| format!("/api/1/accounts?count=1000&page={page}"))
        .collect();
    let run_pages: Vec<String> = (1..=10)
        .map(|page| format!("/api/1/runs/{run_id}?count=1000&page={page}"))
        .collect();
    let kinds = [
        ("/api/1/accounts?count=1000, pages 1 to 10", pages, 20),
        ("/api/1/runs/{id}?count=1000, pages 1 to 10", run_pages, 20),
        (
            "/api/1/runs/{id} (every account at once)",
            vec![format!("/api/1/runs/{run_id}")],
            50,
        ),
        (
            "/api/1/runs?count=1000",
            vec!["/api/1/runs?count=1000".to_owned()],
            100,
        ),
    ];
    for (label, paths, passes) in kinds {
        let mut latencies = Vec::new();
        let mut bytes = 0;
        // The first pass warms the server's caches; it is not counted.
        for pass in 0..=passes {
            for path in &paths {
                let started = Instant::now();
                let reply = client.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(reply.status(), 200, "{path}");
                bytes = reply.bytes().await.unwrap().len();
                if pass > 0 {
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "  {label}: {} requests one at a time, p50 {:.1} ms, p99 {:.1} ms ({bytes} bytes the last)",
            latencies.len(),
            at(0.5),
            at(0.99)
        );
    }
    println!(
        "  server peak RSS {} MB",
        proc_status(server.id(), "VmHWM:") / 1024
    );
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::main]
async fn main() {
    let all = std::env::args().any(|arg| arg == "all");
    // As AWS serves: 50 ms a call, 10 requests/s per account, jobs done 2 s after they are
    // generated (and, as the simulator can also ask, on their second poll).
    let case = |accounts, principals, threads| Case {
        accounts,
        principals,
        latency_ms: 50,
        rate: 10.0,
        burst: 10,
        job_polls: 2,
        job_ms: 2000,
        threads,
        without_identity: false,
        serve_after: false,
    };
    let mut cases = vec![
        case(200, 50, None),
        case(100, 20, None),
        // A converted upstream config (NUM_THREADS = 5).
        case(100, 20, Some(5)),
    ];
    if all {
        cases.push(case(1000, 100, None));
    }
    // `ten-thousand`: 10,000 accounts x 20 with the shipped defaults (1,000 at once), then the
    // operator's endpoints over what it stored.
    if std::env::args().any(|arg| arg == "ten-thousand") {
        cases = vec![Case {
            serve_after: true,
            ..case(10_000, 20, None)
        }];
    }
    // AARDVARK_BENCH_ONLY=200x50 runs only the scenarios of that size (for profiling); another
    // size (AARDVARK_BENCH_ONLY=2000x20) runs that size alone, every account at once
    // (UPDATER_NUM_THREADS at least the accounts): memory per account in flight is the growth
    // of peak RSS between such runs, each in a process of its own.
    let only = std::env::var("AARDVARK_BENCH_ONLY").unwrap_or_default();
    if let Some((accounts, principals)) = only
        .split_once('x')
        .and_then(|(a, p)| Some((a.parse().ok()?, p.parse().ok()?)))
        .filter(|&(a, p)| !cases.iter().any(|c| (c.accounts, c.principals) == (a, p)))
    {
        let threads = Settings::default().updater_num_threads;
        cases = vec![case(
            accounts,
            principals,
            (accounts as usize > threads).then_some(accounts as usize),
        )];
    }
    for case in &cases {
        if format!("{}x{}", case.accounts, case.principals).contains(&only) {
            let wall = run(case).await;
            // What identity details (authorization details, the credential report, access
            // keys) add to a collection, against the same run without them.
            if case.accounts == 200 && case.principals == 50 {
                let baseline = run(&Case {
                    without_identity: true,
                    ..*case
                })
                .await;
                println!(
                    "  identity details cost: {wall:.2} s with, {baseline:.2} s without: {:+.1}% wall time",
                    100.0 * (wall / baseline - 1.0)
                );
            }
        }
    }
}
