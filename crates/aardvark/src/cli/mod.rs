//! The `aardvark` command line: argument definitions and one `run` per subcommand over the
//! library. Exit codes: 0 success, 1 fatal error, 2 partial failure (`update`).

mod accounts;
#[cfg(feature = "demo")]
pub mod demo;
mod findings;
mod recommend;
mod report;
pub mod wizard;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::task::AbortOnDropHandle;

use crate::collector::aws::AwsOverrides;
use crate::collector::progress::Progress;
use crate::collector::{Collector, UpdateRequest, SILENT_RUN_IS_DEAD_AFTER};
use crate::config::{self, LogFormat, Settings};
use crate::db::runs::RunOwner;
use crate::db::{uri::redact_password, Database};
use crate::service::connections::ConnectionLimits;
use crate::service::{self, schedule::Schedule, Service};

/// Where `serve` and `demo` listen unless told otherwise (upstream's address).
const DEFAULT_BIND: &str = "127.0.0.1:5000";

#[derive(Debug, Parser)]
#[command(
    name = "aardvark",
    version,
    about = "Multi-account AWS IAM Access Advisor collector, cache and HTTP API"
)]
pub struct Cli {
    /// Settings file (default: ./settings.yaml, then /etc/aardvark/settings.yaml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less log output (-q warnings, -qq errors).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
    /// Log line format (default: the LOG_FORMAT setting, else text).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write settings.yaml, asking for each setting, or convert an upstream config.py.
    Config(Box<wizard::ConfigArgs>),
    /// Create the database schema, or migrate an existing one (also upstream's). Idempotent.
    #[command(alias = "create_db")]
    CreateDb,
    /// Drop aardvark's tables and all their data.
    #[command(alias = "drop_db")]
    DropDb {
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
    },
    /// Collect Access Advisor data from AWS into the database.
    Update {
        /// Accounts: ids, SWAG names or aliases, or `all` (repeatable, comma-separated).
        /// Default: every account of the configured source.
        #[arg(
            short = 'a',
            long = "accounts",
            value_delimiter = ',',
            value_name = "ACCOUNT"
        )]
        accounts: Vec<String>,
        /// Collect only these principal ARNs (repeatable, comma-separated).
        #[arg(short = 'r', long = "arns", value_delimiter = ',', value_name = "ARN")]
        arns: Vec<String>,
        /// Delete principals and namespaces AWS no longer lists (also UPDATER_PRUNE: true).
        #[arg(long)]
        prune: bool,
        /// Take part in the shared run in progress, or wait for the next one, instead of
        /// starting a run (PostgreSQL).
        #[arg(long, conflicts_with_all = ["accounts", "arns", "prune"])]
        join: bool,
    },
    /// Run a collection against the built-in AWS simulator into a local SQLite file, then serve it.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to serve the API on.
        #[arg(short, long, default_value = DEFAULT_BIND, value_name = "HOST:PORT")]
        bind: String,
        /// The SQLite file to collect into (replaced).
        #[arg(long, default_value = "aardvark-demo.db")]
        database: PathBuf,
    },
    /// Reports from the database, without a server.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Accounts in the database's records: forget those that should no longer show.
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// Serve the HTTP API (and collect on a schedule with --collect-every).
    #[command(alias = "start_api")]
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(short, long, default_value = DEFAULT_BIND, value_name = "HOST:PORT")]
    bind: String,
    /// Collect on this schedule while serving: 30m, 6h, 1d (default: the COLLECT_EVERY
    /// setting; none).
    #[arg(long, value_name = "DURATION", value_parser = config::parse_interval)]
    collect_every: Option<std::time::Duration>,
    /// Serve HTTPS with this certificate chain (PEM; default: the TLS_CERT_FILE setting).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM; default: the TLS_KEY_FILE setting).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Accepted for upstream's `start_api -w N` (gunicorn workers), with no effect: one
    /// aardvark process answers requests on every core.
    #[arg(short = 'w', long, value_name = "N")]
    workers: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Principals and services not used in a window (what `/api/1/unused` answers).
    Unused(report::UnusedArgs),
    /// Findings: unused roles, access keys, passwords and permissions (table, csv, json, or
    /// asff for Security Hub's batch-import-findings).
    Findings(findings::FindingsArgs),
    /// A role's or user's least-privilege recommendation (json, diff, or cli: the aws iam
    /// commands that apply it).
    Recommend(recommend::RecommendArgs),
}

/// The log format once logging is set up (a fatal error before then is printed plainly).
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Runs the command line and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(upstream_words_skipped(std::env::args_os()));
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Once: a JSON log line where the logs are JSON, else one `error:` line.
            let message = fatal_message(&err);
            match LOG_FORMAT.get() {
                Some(LogFormat::Json) => tracing::error!("{message}"),
                _ => eprintln!("error: {message}"),
            }
            ExitCode::from(1)
        }
    }
}

/// The command line without a first argument `aardvark`: upstream's image ran
/// `docker run IMAGE aardvark update`, its entrypoint a shell; ours is the binary itself.
fn upstream_words_skipped(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = args.collect();
    if args.get(1).is_some_and(|first| first == "aardvark") {
        args.remove(1);
    }
    args
}

/// A fatal error and its causes as one line, each cause once (one whose text the message
/// before it already holds is left out), with a hint where the fix is known.
fn fatal_message(err: &anyhow::Error) -> String {
    let mut message = crate::error_text::one_line(err.as_ref());
    if message.contains("database") && message.contains("does not exist") {
        message.push_str(
            " (create the database first, e.g. `createdb <name>` on the PostgreSQL host, then run `aardvark create-db`)",
        );
    }
    message
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config(args) = &cli.command {
        init_logging(&cli, LogFormat::Text);
        return run_config(args);
    }
    let loaded = config::load_from_process(cli.config.as_deref())?;
    init_logging(&cli, loaded.settings.log_format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let cli_format = effective_format(&cli, loaded.settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Config(_) => unreachable!("handled above"),
            Command::CreateDb => run_create_db(&loaded.settings).await,
            Command::DropDb { yes } => run_drop_db(&loaded.settings, yes).await,
            Command::Serve(args) => run_serve(loaded.settings, args).await,
            Command::Report(ReportCommand::Unused(args)) => {
                let db = open_migrated(&loaded.settings).await?;
                report::run(&db, &args).await?;
                db.close().await;
                Ok(ExitCode::SUCCESS)
            }
            Command::Report(ReportCommand::Findings(args)) => {
                let db = open_migrated(&loaded.settings).await?;
                findings::run(&db, &loaded.settings, &args).await?;
                db.close().await;
                Ok(ExitCode::SUCCESS)
            }
            Command::Report(ReportCommand::Recommend(args)) => {
                let db = open_migrated(&loaded.settings).await?;
                let result = recommend::run(&db, &loaded.settings, &args).await;
                db.close().await;
                result.map(|()| ExitCode::SUCCESS)
            }
            Command::Accounts(command) => {
                let db = open_migrated(&loaded.settings).await?;
                let code = accounts::run(&db, &command).await;
                db.close().await;
                code
            }
            Command::Update { join: true, .. } => {
                run_join(&loaded.settings, || progress_for(&cli_format)).await
            }
            Command::Update {
                accounts,
                arns,
                prune,
                join: false,
            } => {
                let request = UpdateRequest {
                    accounts,
                    arns,
                    prune,
                    scheduled: false,
                };
                run_update(&loaded.settings, &request, progress_for(&cli_format)).await
            }
            #[cfg(feature = "demo")]
            Command::Demo { bind, database } => {
                demo::run(loaded.settings, &bind, &database, progress_for(&cli_format)).await
            }
        }
    })
}

fn init_logging(cli: &Cli, configured: LogFormat) {
    let level = match i16::from(cli.verbose) - i16::from(cli.quiet) {
        i16::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("AARDVARK_LOG")
        .ok()
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| {
            tracing_subscriber::EnvFilter::new(format!("warn,aardvark={level},aws_sim={level}"))
        });
    let format = effective_format(cli, configured);
    let _ = LOG_FORMAT.set(format);
    // A log line that cannot be written is dropped: the subscriber would otherwise report it
    // with `eprintln!`, which panics when stderr is gone (a closed pipe), ending a server
    // because whoever read its log went away.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

fn effective_format(cli: &Cli, configured: LogFormat) -> LogFormat {
    match cli.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => configured,
    }
}

/// A progress bar for people at a terminal; log lines for everything else.
fn progress_for(format: &LogFormat) -> Progress {
    if *format == LogFormat::Text && std::io::stderr().is_terminal() {
        Progress::bar()
    } else {
        Progress::logs()
    }
}

fn run_config(args: &wizard::ConfigArgs) -> anyhow::Result<ExitCode> {
    if args.output.exists() && !args.force {
        bail!(
            "{} exists; pass --force to overwrite it or --output to write elsewhere",
            args.output.display()
        );
    }
    let stdin = std::io::stdin();
    let (text, warnings) = wizard::build_settings(args, &mut stdin.lock(), &mut std::io::stderr())?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    // What we write must load, with the same checks as every other command: checked before
    // anything is written, so that a refused file is never left behind.
    let loaded = config::check_file_text(&args.output, &text)
        .context("the converted settings would not load; nothing was written")?;
    for warning in loaded.warnings {
        tracing::warn!("{warning}");
    }
    std::fs::write(&args.output, &text)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

/// The database of `settings`; its errors name the database (its password masked).
async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    Ok(Database::connect(&settings.database_uri, crate::api::wire::RENDERING).await?)
}

async fn run_create_db(settings: &Settings) -> anyhow::Result<ExitCode> {
    let db = open_database(settings).await?;
    let migrated = db.migrate().await?;
    // A database from before migration 0006 (or upstream's) gets its answers rendered now.
    let rendered = db
        .render_missing()
        .await
        .context("cannot render the stored principals' answers")?;
    db.close().await;
    print!(
        "{}",
        create_db_summary(
            &migrated,
            rendered,
            &redact_password(&settings.database_uri)
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// What `create-db` did, in the operator's words.
fn create_db_summary(migrated: &crate::db::Migrated, rendered: usize, shown: &str) -> String {
    if migrated.applied.is_empty() {
        return format!("database schema is up to date in {shown}: nothing to do\n");
    }
    let mut out = if migrated.from_upstream {
        format!("migrated upstream Aardvark's database in {shown} in place (upstream's two tables are kept, their duplicate rows merged):\n")
    } else if migrated.created {
        format!("created aardvark's schema in {shown}:\n")
    } else {
        format!("brought the database schema in {shown} up to date:\n")
    };
    for migration in &migrated.applied {
        out.push_str(&format!("  applied {migration}\n"));
    }
    if migrated.merged_rows > 0 {
        out.push_str(&format!(
            "  merged {} duplicate (principal, service) rows of upstream's into one each\n",
            migrated.merged_rows
        ));
    }
    if rendered > 0 {
        out.push_str(&format!(
            "  prepared the API's answers of {rendered} stored principals\n"
        ));
    }
    out
}

async fn run_drop_db(settings: &Settings, yes: bool) -> anyhow::Result<ExitCode> {
    let shown = redact_password(&settings.database_uri);
    if !yes {
        eprint!("Drop aardvark's tables and all their data in {shown}? [y/N]: ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            // Not done, so not a success: a script without --yes (and without a terminal to
            // answer) must not take it for one.
            println!("nothing dropped");
            return Ok(ExitCode::from(1));
        }
    }
    let db = open_database(settings).await?;
    db.drop_all().await?;
    db.close().await;
    println!("dropped aardvark's tables in {shown}");
    Ok(ExitCode::SUCCESS)
}

/// Stops `collector`'s run on SIGTERM or SIGINT, until the handle is dropped.
fn stop_on_signal(collector: &Collector) -> AbortOnDropHandle<()> {
    let stopper = collector.stopper();
    AbortOnDropHandle::new(tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!("asked to stop: no new principal starts; writes in flight finish");
        stopper.stop();
    }))
}

/// The database of `settings`, its schema brought up to date.
async fn open_migrated(settings: &Settings) -> anyhow::Result<Database> {
    let db = open_database(settings).await?;
    db.migrate()
        .await
        .context("cannot bring the database schema up to date")?;
    Ok(db)
}

/// Opens and migrates the database, then collects; exit 0, or 2 when anything failed.
async fn run_update(
    settings: &Settings,
    request: &UpdateRequest,
    progress: Progress,
) -> anyhow::Result<ExitCode> {
    let db = open_migrated(settings).await?;
    let collector = Collector::new(settings.clone(), db.clone(), AwsOverrides::default()).await;
    let _stop_on_signal = stop_on_signal(&collector);
    let report = collector.run(request, progress).await?;
    print!("{}", report.summary());
    db.close().await;
    Ok(ExitCode::from(report.exit_code()))
}

/// `update --join`: takes part in the shared run in progress, or waits for the next one;
/// exit codes as `update`'s, of the whole run.
async fn run_join(
    settings: &Settings,
    progress: impl Fn() -> Progress,
) -> anyhow::Result<ExitCode> {
    let db = open_migrated(settings).await?;
    if !db.shares_runs() || !settings.collect_shared {
        db.close().await;
        anyhow::bail!(
            "update --join takes part in a run shared through PostgreSQL; on {} one process collects at a time: run `aardvark update`",
            if db.shares_runs() { "this database (COLLECT_SHARED: false)" } else { "SQLite" }
        );
    }
    let collector = Collector::new(settings.clone(), db.clone(), AwsOverrides::default()).await;
    let _stop_on_signal = stop_on_signal(&collector);
    let stop = collector.stop_signal();
    let mut waiting_logged = false;
    let report = loop {
        if let Some(report) = collector.join(progress()).await? {
            break report;
        }
        if !waiting_logged {
            tracing::info!("no shared run in progress: waiting for the next one");
            waiting_logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(JOIN_LOOK_EVERY) => {}
            () = stop.wait() => {
                db.close().await;
                return Ok(ExitCode::from(1));
            }
        }
    };
    print!("{}", report.summary());
    db.close().await;
    Ok(ExitCode::from(report.exit_code()))
}

/// How often `update --join` looks for a shared run to take part in.
const JOIN_LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

async fn run_serve(mut settings: Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(workers) = args.workers {
        tracing::warn!(
            workers,
            "-w/--workers is upstream's gunicorn worker count and has no effect here: one aardvark process answers requests on every core"
        );
    }
    settings.collect_every = args.collect_every.or(settings.collect_every);
    settings.tls_cert_file = args.tls_cert.or(settings.tls_cert_file);
    settings.tls_key_file = args.tls_key.or(settings.tls_key_file);
    // Bad TLS files stop the server before anything else happens.
    let tls = service::tls::load(
        settings.tls_cert_file.as_deref(),
        settings.tls_key_file.as_deref(),
    )?;
    let db = open_database(&settings).await?;
    let upgrading = !db.is_migrated().await?;
    db.migrate()
        .await
        .context("cannot bring the database schema up to date (try `aardvark create-db`)")?;
    if upgrading {
        // What an older build kept may lack what this one reads beside its renderings (until
        // then those principals are read whole): made in the background rather than at the
        // next collection. Nothing is lost if it fails.
        let renderer = db.clone();
        tokio::spawn(async move {
            match renderer.render_missing().await {
                Ok(0) => {}
                Ok(principals) => {
                    tracing::info!(principals, "rendered the API's answers ahead of reads")
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot render the API's answers ahead of reads")
                }
            }
        });
    }
    for run_id in db
        .mark_interrupted_runs(&RunOwner::this_process(), SILENT_RUN_IS_DEAD_AFTER)
        .await?
    {
        tracing::warn!(run_id, "an earlier run's process died: marked interrupted");
    }
    crate::findings::keep_rules_current(&db, &settings.finding_rules()).await;
    if !settings.collect_worker && settings.collect_every.is_some() {
        tracing::warn!("COLLECT_WORKER is false: this server takes no part in collections, and COLLECT_EVERY is ignored");
    }
    let schedule = match settings.collect_every.filter(|_| settings.collect_worker) {
        Some(every) => Some(Schedule {
            collector: Collector::new(settings.clone(), db.clone(), AwsOverrides::default()).await,
            every,
            request: UpdateRequest::default(),
        }),
        None => None,
    };
    // Raised before the first connection can come (and before "serving on" is printed).
    let limits = ConnectionLimits::from_settings(&settings).within_file_limit();
    let listener = bind_listener(&args.bind).await?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%address, database = %redact_password(&settings.database_uri), scheme, "serving the API");
    println!("serving on {scheme}://{address}/ (API docs at {scheme}://{address}/apidocs/)");
    let options = Service::api_options(&settings, schedule.as_ref(), address);
    Service {
        db: db.clone(),
        listener,
        tls,
        schedule,
        shutdown_timeout: settings.shutdown_timeout,
        limits,
    }
    .run(&options, shutdown_signal())
    .await?;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A listening socket on `bind` (`HOST:PORT`).
pub(crate) async fn bind_listener(bind: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    Ok(listener.into_std()?)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
