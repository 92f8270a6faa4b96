//! Runs that do not end well: `aardvark update` killed with SIGKILL in the middle (then the next
//! run marks the dead run `interrupted` and stores exactly what an uninterrupted run would),
//! stopped with SIGTERM (no new principal, writes finish, the run recorded `interrupted`, exit
//! 1), and the rule that decides a run is dead, on both backends.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aardvark::db::runs::{RunOwner, RunStatus};
use aws_sim::{Scenario, SimHandle};
use common::{assert_same, fresh_db, stored, Backend, TestDb};

const DEADLINE: Duration = Duration::from_secs(120);

/// Six accounts of 30 principals, 20 ms a call, 20 requests/s per account: several seconds.
async fn slow_sim() -> SimHandle {
    let mut scenario = Scenario::generated(77, 6, 30);
    scenario.defaults.latency_ms = 20;
    scenario.defaults.rate_limit = Some(aws_sim::RateLimit {
        per_second: 20.0,
        burst: 5,
    });
    aws_sim::start(scenario).await.unwrap()
}

/// `aardvark update` against `sim` into `db`, from a settings file in `dir`.
fn update(dir: &Path, sim: &SimHandle, db: &TestDb) -> Command {
    let mut command = common::aardvark_against(
        dir,
        sim,
        db,
        "  UPDATER_ACCOUNT_RATE_LIMIT: 20\n  UPDATER_ACCOUNT_BURST: 5\n",
    );
    command.args(["--log-format", "json", "update"]);
    command
}

/// Waits, with a deadline, until `count` principals are stored.
async fn until_stored(db: &TestDb, count: usize, child: &mut Child) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stored = stored(&db.db).await.len();
        if stored >= count {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the update ended before {count} principals were stored"
        );
        assert!(Instant::now() < deadline, "only {stored} principals stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for(mut child: Child) -> std::process::Output {
    tokio::time::timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            let mut output = std::process::Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            use std::io::Read;
            let _ = child.stdout.take().unwrap().read_to_end(&mut output.stdout);
            let _ = child.stderr.take().unwrap().read_to_end(&mut output.stderr);
            output
        }),
    )
    .await
    .expect("the update ended")
    .unwrap()
}

/// Killed mid-collection, then run again: the dead run is `interrupted`, the second `ok`, and
/// the database holds exactly what one uninterrupted collection stores.
async fn a_killed_update_is_marked_interrupted_and_the_next_run_completes(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let sim = slow_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut killed = update(dir.path(), &sim, &db).spawn().unwrap();
    until_stored(&db, 20, &mut killed).await;
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let runs = db.db.recent_runs(5).await.unwrap();
    assert_eq!(
        runs[0].status,
        RunStatus::Running,
        "nothing could record the kill"
    );
    let partial = stored(&db.db).await.len();
    assert!(
        partial < sim.expected().len(),
        "killed after everything was stored"
    );

    let second = wait_for(update(dir.path(), &sim, &db).spawn().unwrap()).await;
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let runs = db.db.recent_runs(5).await.unwrap();
    let statuses: Vec<RunStatus> = runs.iter().map(|run| run.status).collect();
    assert_eq!(statuses, [RunStatus::Ok, RunStatus::Interrupted]);
    assert!(runs[1].finished_at.is_some());
    assert_same(&stored(&db.db).await, sim.expected());
    if backend == Backend::Sqlite {
        let pool = sqlx::AnyPool::connect(&db.sqlx_url()).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(check, "ok");
        pool.close().await;
    }
    // Every stored principal is served from a rendering made of its rows as they are.
    assert_eq!(db.db.render_missing().await.unwrap(), 0);
}

/// SIGTERM: no new principal starts, the writes in flight finish, the run is recorded
/// `interrupted` with what it did, and the exit status is 1.
async fn sigterm_stops_an_update_cleanly(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let sim = slow_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = update(dir.path(), &sim, &db).spawn().unwrap();
    until_stored(&db, 10, &mut child).await;
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let output = wait_for(child).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    let runs = db.db.recent_runs(5).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Interrupted);
    assert!(runs[0].finished_at.is_some());
    let stored_now = stored(&db.db).await;
    assert!(stored_now.len() < sim.expected().len());
    assert_eq!(
        runs[0].totals.principals_collected as usize,
        stored_now.len(),
        "every principal collected was stored and counted"
    );
    // What was stored is what AWS said: a run that stops leaves no half-written principal.
    for (arn, services) in &stored_now {
        assert_eq!(Some(services), sim.expected().get(arn), "{arn}");
    }
    // What the stop left undone is "not collected (interrupted)", never a failure.
    assert_eq!(runs[0].totals.principals_failed, 0, "{stdout}");
    assert!(runs[0].totals.principals_interrupted > 0, "{:?}", runs[0]);
    assert!(!stdout.contains("failed principals"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{} not collected (interrupted)",
            runs[0].totals.principals_interrupted
        )),
        "{stdout}"
    );
    let accounts = db.db.run_accounts(runs[0].id).await.unwrap();
    assert!(
        accounts
            .iter()
            .all(|a| a.failures.is_empty() && a.status.as_str() != "partial"),
        "{accounts:?}"
    );
}

/// A run is dead when its process on this host is gone, or when it has been silent too long;
/// a live one (this process, beating) is left alone.
async fn only_runs_of_dead_processes_are_marked_interrupted(backend: Backend) {
    let Some(db) = fresh_db(backend).await else {
        return;
    };
    let me = RunOwner::this_process();
    let run_of = |host: Option<String>, pid: u32| {
        let db = db.db.clone();
        async move { db.start_run("{}", &RunOwner { host, pid }).await.unwrap() }
    };
    let alive = run_of(me.host.clone(), me.pid).await;
    // A process of this host that has ended.
    let mut ended = Command::new("true").spawn().unwrap();
    ended.wait().unwrap();
    let dead = run_of(me.host.clone(), ended.id()).await;
    // Another host's run that stopped beating long ago.
    let silent = run_of(Some("elsewhere".into()), 1).await;
    db.execute(&format!(
        "UPDATE aardvark_runs SET heartbeat_at = '2000-01-01 00:00:00.000000' WHERE id = {silent}"
    ))
    .await;
    // Another host's live run.
    let elsewhere = run_of(Some("elsewhere".into()), 2).await;
    let mut marked = db
        .db
        .mark_interrupted_runs(&me, Duration::from_secs(60))
        .await
        .unwrap();
    marked.sort();
    assert_eq!(marked, [dead, silent]);
    let status = |runs: &[aardvark::db::runs::RunRecord], id: i64| {
        runs.iter().find(|run| run.id == id).unwrap().status
    };
    let runs = db.db.recent_runs(10).await.unwrap();
    assert_eq!(status(&runs, alive), RunStatus::Running);
    assert_eq!(status(&runs, elsewhere), RunStatus::Running);
    assert_eq!(status(&runs, dead), RunStatus::Interrupted);
    // Marking twice changes nothing.
    assert!(db
        .db
        .mark_interrupted_runs(&me, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
}

on_both_backends!(
    a_killed_update_is_marked_interrupted_and_the_next_run_completes,
    sigterm_stops_an_update_cleanly,
    only_runs_of_dead_processes_are_marked_interrupted,
);
