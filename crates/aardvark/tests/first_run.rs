//! A first run without surprises, through the binary: missing credentials as one line, AWS
//! failures stored as sentences, forgetting a phantom account, `create-db` saying what it did,
//! the container's variables and upstream's command words, the demo without a terminal, and
//! upstream 0.3.5's habits end to end (its `config` flags, its config.py, its Docker variables,
//! `create_db` on its database, `update -a NAME`, `start_api -b -w`, Repokid's queries).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use aws_sim::scenario::SwagBucket;
use aws_sim::Scenario;
use common::{fresh_db, output_text as text, Backend, Server};

/// Runs `command` off the async workers (the simulator answers on them).
async fn output_of(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The binary in `dir`, with none of the caller's `AARDVARK_*` or `AWS_*` variables.
fn bare_aardvark(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aardvark"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AARDVARK_") || key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command.current_dir(dir);
    command
}

/// Without credentials, nothing is attempted in any account: one line says so, exit 1, and no
/// run is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_is_one_line_and_exit_1() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(Scenario::generated(41, 3, 2)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::aardvark_against(dir.path(), &sim, &db, "");
    // Empty AWS files (not missing ones, which the SDK warns about).
    std::fs::write(dir.path().join("no-aws-config"), "").unwrap();
    std::fs::write(dir.path().join("no-aws-credentials"), "").unwrap();
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .arg("update");
    let output = output_of(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(
        stderr.matches("no AWS credentials found").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count(),
        1,
        "one line: {stderr}"
    );
    assert!(
        !stderr.contains("DispatchFailure") && !stderr.contains('{'),
        "a sentence, not a Debug rendering: {stderr}"
    );
    assert_eq!(sim.stats().total_calls_of("AssumeRole"), 0);
    assert!(db.db.recent_runs(5).await.unwrap().is_empty());
}

/// A service that cannot be reached fails its accounts with one sentence each: what the
/// operator reads in the summary, `/api/1/accounts` and the dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_are_stored_as_one_sentence() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(Scenario::generated(42, 2, 2)).await.unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::aardvark_against(
        dir.path(),
        &sim,
        &db,
        &format!("  UPDATER_MAX_ATTEMPTS: 1\n  AWS_ENDPOINTS:\n    iam: http://{address}\n"),
    );
    command.arg("update");
    let output = output_of(command).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let outcomes = db.db.account_outcomes().await.unwrap();
    assert_eq!(outcomes.len(), 2);
    for outcome in outcomes {
        let record = outcome.latest;
        let message = record.error_message.unwrap_or_default();
        assert_eq!(record.error_code.as_deref(), Some("ConnectionError"));
        assert!(
            message.starts_with("ListRoles: ")
                && !message.contains("DispatchFailure")
                && !message.contains('{')
                && message.len() < 400,
            "{message}"
        );
    }
}

/// A mistyped `-a` leaves a failed account behind; `accounts forget` removes it, refuses to
/// lose stored principals unless asked, and says when an account is unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phantom_account_can_be_forgotten() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let sim = aws_sim::start(Scenario::generated(43, 1, 3)).await.unwrap();
    let real = sim.account_ids()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut command = common::aardvark_against(dir.path(), &sim, &db, "");
        command.args(args);
        output_of(command)
    };
    let output = run(&["update", "-a", &format!("{real},999999999999")]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let known = || async {
        let outcomes = db.db.account_outcomes().await.unwrap();
        outcomes
            .into_iter()
            .map(|o| o.latest.account_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(known().await, [real.clone(), "999999999999".to_owned()]);

    let output = run(&["accounts", "forget", "999999999999"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("forgot account 999999999999: 1 run records"),
        "{}",
        text(&output)
    );
    assert_eq!(known().await, [real.as_str()]);

    let output = run(&["accounts", "forget", "999999999999"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("unknown"), "{}", text(&output));

    let stored_before = common::stored(&db.db).await.len();
    let output = run(&["accounts", "forget", &real]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("--delete-principals"),
        "{}",
        text(&output)
    );
    assert_eq!(common::stored(&db.db).await.len(), stored_before);
    assert_eq!(known().await, [real.as_str()], "a refusal changes nothing");

    let output = run(&["accounts", "forget", &real, "--delete-principals"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(common::stored(&db.db).await.is_empty());
    assert!(known().await.is_empty());
}

/// `create-db` says what it did: created, nothing to do, or an upstream database migrated in
/// place with its duplicate rows merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_db_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let create = |uri: &str| {
        let output = bare_aardvark(dir.path())
            .env("AARDVARK_SQLALCHEMY_DATABASE_URI", uri)
            .arg("create-db")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let fresh = create("sqlite:///fresh.db");
    assert!(
        fresh.starts_with("created aardvark's schema in sqlite:///fresh.db:")
            && fresh.contains("applied 0001 upstream schema"),
        "{fresh}"
    );
    let again = create("sqlite:///fresh.db");
    assert!(
        again.contains("up to date") && again.contains("nothing to do"),
        "{again}"
    );

    copy_upstream_fixture_with_a_duplicate(&dir.path().join("upstream.db")).await;
    let upstream = create("sqlite:///upstream.db");
    assert!(
        upstream
            .starts_with("migrated upstream Aardvark's database in sqlite:///upstream.db in place")
            && upstream.contains("merged 1 duplicate")
            && upstream.contains("prepared the API's answers of 24 stored principals"),
        "{upstream}"
    );
}

/// Upstream 0.3.5's own database, with one duplicate (principal, namespace) row as upstream's
/// schema allowed.
async fn copy_upstream_fixture_with_a_duplicate(to: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/upstream-0.3.5.db");
    std::fs::copy(fixture, to).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", to.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO advisor_data (item_id, \"lastAuthenticated\", \"serviceName\", \"serviceNamespace\", \"lastAuthenticatedEntity\", \"totalAuthenticatedEntities\") \
         SELECT item_id, 0, \"serviceName\", \"serviceNamespace\", NULL, 0 FROM advisor_data ORDER BY id LIMIT 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// The image's environment, read from the Dockerfile's `ENV` lines (its data directory moved
/// to a temporary one), with upstream's `docker run IMAGE aardvark <command>` words.
#[test]
fn the_images_environment_and_upstreams_command_words() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"))
            .unwrap();
    let env = dockerfile_env(&dockerfile);
    assert_eq!(
        env.get("AARDVARK_DATA_DIR").map(String::as_str),
        Some("/data"),
        "upstream's volume"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut command = bare_aardvark(dir.path());
    for (key, value) in &env {
        command.env(
            key,
            value.replace("/data", &dir.path().display().to_string()),
        );
    }
    let output = command.args(["aardvark", "create-db"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(dir.path().join("aardvark.db").exists(), "{}", text(&output));
}

/// `ENV KEY=value \` lines of a Dockerfile (values without spaces or quotes).
fn dockerfile_env(dockerfile: &str) -> std::collections::BTreeMap<String, String> {
    let mut env = std::collections::BTreeMap::new();
    let mut continued = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        let rest = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if continued => line,
            None => continue,
        };
        continued = rest.ends_with('\\');
        for pair in rest.trim_end_matches('\\').split_whitespace() {
            if let Some((key, value)) = pair.split_once('=') {
                env.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    env
}

/// Without a terminal, the demo says it is collecting every few seconds, and SIGTERM during
/// its collection ends it with the run's summary and exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_without_a_terminal_reports_progress_and_stops_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = bare_aardvark(dir.path());
    command
        .args(["demo", "--database", "demo.db", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = common::gathered(child.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + common::PROCESS_DEADLINE;
    while !stderr.lock().unwrap().contains("collection in progress") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the demo ended: {}",
            stderr.lock().unwrap()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no progress line: {}",
            stderr.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("interrupted") && stdout.contains("run 1 finished"),
        "{stdout}"
    );
    assert!(!stdout.contains("served on"), "{stdout}");
}

/// Upstream 0.3.5's habits in one go, against the simulator: its image's `config` flags, its
/// config.py through `--from-legacy`, its Docker variables, `create_db` on its database,
/// `update -a NAME`, `start_api -b -w`, and Repokid's queries answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_habits_end_to_end() {
    let mut scenario = Scenario::generated(44, 3, 3);
    scenario.swag = Some(SwagBucket {
        bucket: "swag".into(),
        key: "v2/accounts.json".into(),
        schema_version: 2,
    });
    let sim = aws_sim::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let aardvark = |args: &[&str]| {
        let mut command = bare_aardvark(dir.path());
        command
            .args(args)
            // Upstream's image: its variables, and AWS's standard ones.
            .env("AARDVARK_ROLE", "Aardvark")
            .env("AARDVARK_ACCOUNTS", "account-100000000001,100000000002")
            .env("AARDVARK_DATA_DIR", dir.path().join("unused-data-dir"))
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &sim.base_url)
            .env("AWS_ACCESS_KEY_ID", "AKIDHUB")
            .env("AWS_SECRET_ACCESS_KEY", "hub-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-aws-credentials"),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };

    // The image's entrypoint ran exactly this.
    let output = output_of(aardvark(&[
        "config",
        "--no-prompt",
        "-a",
        "Aardvark",
        "-b",
        "swag",
        "-d",
        "sqlite:///upstream.db",
    ]))
    .await;
    assert!(output.status.success(), "{}", text(&output));

    // An older hand-edited config.py replaces it.
    std::fs::write(
        dir.path().join("config.py"),
        r#"# Aardvark 0.3.5 configuration
SWAG_OPTS = {
    'swag.type': 's3',
    'swag.bucket_name': 'swag',
    'swag.region': 'eu-west-1',
}
SWAG_FILTER = None
SWAG_SERVICE_ENABLED_REQUIREMENT = None
ROLENAME = 'Aardvark'
REGION = 'us-east-1'
ARN_PARTITION = 'aws'
SQLALCHEMY_DATABASE_URI = 'sqlite:///upstream.db'
SQLALCHEMY_TRACK_MODIFICATIONS = False
NUM_THREADS = "5"
LOG_CFG = {
    'version': 1,
    'handlers': {'file': {'class': 'logging.handlers.RotatingFileHandler', 'filename': 'aardvark.log'}},
}
PHANTOMJS = '/usr/bin/phantomjs'
"#,
    )
    .unwrap();
    let output = output_of(aardvark(&[
        "config",
        "--from-legacy",
        "config.py",
        "--force",
    ]))
    .await;
    assert!(output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("LOG_CFG") && said.contains("stderr"),
        "{said}"
    );
    assert!(said.contains("PHANTOMJS is obsolete"), "{said}");
    assert!(!said.contains("REGION has no equivalent"), "{said}");

    // Its database, migrated in place.
    copy_upstream_fixture_with_a_duplicate(&dir.path().join("upstream.db")).await;
    let output = output_of(aardvark(&["create_db"])).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("migrated upstream Aardvark's database in sqlite:///upstream.db")
            && said.contains("merged 1 duplicate"),
        "{said}"
    );
    assert!(
        !dir.path().join("unused-data-dir").exists(),
        "the settings file's database wins over AARDVARK_DATA_DIR"
    );

    // `update -a NAME`, then `update` with upstream's AARDVARK_ACCOUNTS (names in SWAG).
    let output = output_of(aardvark(&["update", "-a", "account-100000000000"])).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 accounts (1 ok"),
        "{}",
        text(&output)
    );
    let output = output_of(aardvark(&["update"])).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("2 accounts (2 ok"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("accounts from ACCOUNTS, looked up in SWAG"),
        "{}",
        text(&output)
    );
    let regions = sim.stats().signing_regions;
    assert!(
        regions.contains(&("s3".into(), "eu-west-1".into())),
        "SWAG.opts.region is used: {regions:?}"
    );
    assert!(
        regions.contains(&("iam".into(), "us-east-1".into())),
        "{regions:?}"
    );

    // `start_api -b HOST:PORT -w 4`, then Repokid's queries.
    let mut serve = aardvark(&["start_api", "-b", "127.0.0.1:0", "-w", "4"]);
    serve.stdin(std::process::Stdio::null());
    let server = Server::spawn(serve);
    let stderr = server.until_logged("-w/--workers").await;
    assert!(stderr.contains("no effect"), "{stderr}");
    let client = reqwest::Client::new();
    let advisors = format!("{}/api/1/advisors", server.base_url);
    // As Repokid asks: a JSON body, `count` and `page` in the query.
    let post = |body: serde_json::Value| {
        let request = client
            .post(&advisors)
            .query(&[("count", "200"), ("page", "1")])
            .json(&body);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    for (query, expected_account) in [
        (
            serde_json::json!({"phrase": "100000000001"}),
            "100000000001",
        ),
        (
            serde_json::json!({"phrase": "111111111111"}),
            "111111111111",
        ),
    ] {
        let body = post(query.clone()).await;
        let arns: Vec<&String> = body
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("arn:"))
            .collect();
        assert!(!arns.is_empty(), "{query}: {body}");
        assert!(
            arns.iter()
                .all(|arn| arn.contains(&format!(":{expected_account}:"))),
            "{query}: {arns:?}"
        );
    }
    let collected = sim
        .expected()
        .keys()
        .find(|arn| arn.contains(":100000000001:"))
        .unwrap()
        .clone();
    let body = post(serde_json::json!({"arn": [collected]})).await;
    let services = body[&collected].as_array().unwrap();
    assert_eq!(services.len(), sim.expected()[&collected].len(), "{body}");
}

/// A GovCloud hub whose only region setting is upstream's image's `AWS_DEFAULT_REGION`: the
/// region signs every call and brings its partition into every role ARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn govcloud_from_aws_default_region() {
    let Some(db) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    let mut scenario = Scenario::generated(45, 2, 2);
    scenario.partition = "aws-us-gov".into();
    let sim = aws_sim::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = common::aardvark_against(dir.path(), &sim, &db, "");
    command
        .env_remove("AWS_REGION")
        .env("AWS_DEFAULT_REGION", "us-gov-west-1")
        .arg("update");
    let output = output_of(command).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let regions = sim.stats().signing_regions;
    assert!(
        regions.contains(&("iam".into(), "us-gov-west-1".into()))
            && regions.contains(&("sts".into(), "us-gov-west-1".into())),
        "{regions:?}"
    );
    let stored = common::stored(&db.db).await;
    assert_eq!(stored.len(), sim.expected().len());
    assert!(stored
        .keys()
        .all(|arn| arn.starts_with("arn:aws-us-gov:iam::")));
}
