//! `aardvark demo`: the AWS simulator in-process with its built-in scenario, a collection into a
//! fresh local SQLite file, then the API over it, with curl lines to try.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sts::config::Credentials;

use crate::collector::aws::AwsOverrides;
use crate::collector::progress::Progress;
use crate::collector::{Collector, UpdateRequest};
use crate::config::{AccountSource, Settings};
use crate::db::Database;
use crate::service::connections::ConnectionLimits;
use crate::service::Service;

pub async fn run(
    mut settings: Settings,
    bind: &str,
    database: &Path,
    progress: Progress,
) -> anyhow::Result<ExitCode> {
    let sim = aws_sim::start(aws_sim::Scenario::demo())
        .await
        .context("cannot start the AWS simulator")?;
    println!(
        "AWS simulator on {} with {} accounts (some denied by SCPs, some throttled)",
        sim.base_url,
        sim.account_ids().len()
    );
    remove_sqlite_files(database)?;
    let absolute = std::env::current_dir()?.join(database);
    settings.database_uri = format!("sqlite:///{}", absolute.display());
    collection_settings(&mut settings, &sim);
    let db = Database::connect(&settings.database_uri, crate::api::wire::RENDERING).await?;
    db.migrate().await?;
    let collector = Collector::new(settings.clone(), db.clone(), overrides(&sim)).await;
    let stop_on_signal = super::stop_on_signal(&collector);
    let report = collector.run(&UpdateRequest::default(), progress).await?;
    drop(stop_on_signal);
    print!("{}", report.summary());
    if report.interrupted {
        db.close().await;
        sim.shutdown().await;
        return Ok(ExitCode::from(report.exit_code()));
    }
    let stats = sim.stats();
    println!(
        "the simulator answered {} requests and throttled {}",
        stats.requests,
        stats.throttles.values().sum::<u64>()
    );

    // Raised before the first connection can come (and before "serving on" is printed).
    let limits = ConnectionLimits::from_settings(&settings).within_file_limit();
    let listener = super::bind_listener(bind).await?;
    let address = listener.local_addr()?;
    print_suggestions(&report, &sim, &absolute, address);
    let options = Service::api_options(&settings, None, address);
    Service {
        db: db.clone(),
        listener,
        tls: None,
        schedule: None,
        shutdown_timeout: settings.shutdown_timeout,
        limits,
    }
    .run(&options, super::shutdown_signal())
    .await?;
    db.close().await;
    sim.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// How the demo collects from `sim` (the throttling benchmark collects the same way).
pub fn collection_settings(settings: &mut Settings, sim: &aws_sim::SimHandle) {
    settings.account_source = AccountSource::Static;
    settings.accounts = sim.account_ids().to_vec();
    settings.updater_account_rate_limit = 20.0;
    settings.updater_account_burst = 20;
    settings.updater_poll_interval = Duration::from_millis(50);
    settings.updater_poll_max_interval = Duration::from_millis(400);
}

/// The simulator's endpoint and the hub credentials it takes.
pub fn overrides(sim: &aws_sim::SimHandle) -> AwsOverrides {
    AwsOverrides {
        endpoint_url: Some(sim.base_url.clone()),
        credentials: Some(Credentials::new(
            "AKIDDEMOHUB",
            "demo-secret",
            None,
            None,
            "aardvark-demo",
        )),
    }
}

/// Where the data is, and curl lines that answer something: an account with data, and in it
/// a principal whose actions are tracked.
fn print_suggestions(
    report: &crate::collector::report::RunReport,
    sim: &aws_sim::SimHandle,
    database: &Path,
    address: std::net::SocketAddr,
) {
    let (some_account, with_actions) = report
        .accounts
        .iter()
        .filter(|a| a.collected > 0)
        .find_map(|a| {
            Some((
                a.id.clone(),
                sim.principal_with_tracked_actions(&a.id)?.to_owned(),
            ))
        })
        .unwrap_or_default();
    println!(
        "\nThe data is in {} and served on http://{address}/ (Ctrl-C to stop). Try:",
        database.display()
    );
    println!("  curl -s 'http://{address}/api/1/advisors?count=2'");
    println!("  curl -s 'http://{address}/api/1/advisors?phrase={some_account}&count=1000'");
    println!("  curl -s -X POST -H 'Content-Type: application/json' -d '{{\"arn\": [\"{with_actions}\"]}}' http://{address}/api/1/advisors");
    println!(
        "  curl -s 'http://{address}/api/1/advisors?phrase={some_account}&combine=true&count=1000'"
    );
    println!("  curl -s 'http://{address}/api/1/accounts?status=failed'   # which accounts failed, and why");
    println!("  curl -s 'http://{address}/api/1/runs/latest'");
    println!("  curl -s 'http://{address}/api/1/unused?account={some_account}&days=90'   # granted and not used");
    println!("  curl -s 'http://{address}/api/1/unused/accounts?days=90'");
    println!("  curl -s 'http://{address}/api/1/findings?type=unused_access_key&status=active'   # unused roles, keys, passwords, permissions");
    println!("  curl -s 'http://{address}/api/1/actions?arn={with_actions}'");
    println!("  curl -s 'http://{address}/api/1/history?arn={with_actions}'");
    println!("  open http://{address}/ for the dashboard, http://{address}/apidocs/ for the API documentation");
}

/// Removes the SQLite database `database` with its WAL files, so the demo starts afresh.
fn remove_sqlite_files(database: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = database.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err)
                    .with_context(|| format!("cannot replace {}", Path::new(&path).display()))
            }
            _ => {}
        }
    }
    Ok(())
}
