//! The `aardvark` binary end to end: the config wizard, create-db/drop-db, serve, exit codes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::output_text as text;

fn aardvark(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aardvark"));
    command.current_dir(dir).env_remove("AARDVARK_ENV");
    for (key, _) in std::env::vars() {
        if key.starts_with("AARDVARK_") {
            command.env_remove(key);
        }
    }
    command
}

fn run_with_input(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `aardvark config ...` (no input), which must succeed, and loads what it wrote.
fn written_settings(command: Command, dir: &Path) -> aardvark::config::Settings {
    let output = run_with_input(command, "");
    assert!(output.status.success(), "{}", text(&output));
    aardvark::config::load(Some(&dir.join("settings.yaml")), &Default::default())
        .unwrap()
        .settings
}

#[test]
fn config_without_prompts_writes_a_loadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = aardvark(dir.path());
    command.args([
        "config",
        "--no-prompt",
        "--role-name",
        "Reader",
        "--db-uri",
        "sqlite:///x.db",
        "--num-threads",
        "9",
        "--swag-bucket",
        "inventory",
    ]);
    let output = run_with_input(command, "");
    assert!(output.status.success(), "{}", text(&output));
    let loaded =
        aardvark::config::load(Some(&dir.path().join("settings.yaml")), &Default::default())
            .unwrap();
    assert_eq!(loaded.settings.aws_rolename, "Reader");
    assert_eq!(loaded.settings.database_uri, "sqlite:///x.db");
    assert_eq!(loaded.settings.updater_num_threads, 9);
    assert_eq!(
        loaded.settings.account_source,
        aardvark::config::AccountSource::Swag
    );
    assert_eq!(
        loaded.settings.swag.unwrap().bucket.as_deref(),
        Some("inventory")
    );

    // An existing file is not overwritten without --force.
    let mut again = aardvark(dir.path());
    again.args(["config", "--no-prompt"]);
    let output = run_with_input(again, "");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("--force"), "{}", text(&output));

    let mut bad = aardvark(dir.path());
    bad.args(["config", "--no-prompt", "--num-threads", "0", "--force"]);
    let output = run_with_input(bad, "");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
}

#[test]
fn config_asks_and_asks_again_after_a_bad_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = aardvark(dir.path());
    command.args(["config", "--output", "answers.yaml"]);
    // role (bad, then good), database (bad, then the default), threads (bad, then good),
    // source, accounts: every answer checked by the setting's own reader.
    let output = run_with_input(
        command,
        "Bad Role!\nAuditor\nmysql://a/b\n\nlots\n3\nstatic\n111111111111,abc\n111111111111,222222222222\n",
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("Accounts to collect at once"),
        "{}",
        text(&output)
    );
    for refusal in [
        "expected an IAM role name: 1 to 64 letters, digits and +=,.@_- (no spaces or paths); try again",
        "expected a database URI (only sqlite and postgresql databases are supported); try again",
        "expected a whole number from 1 to 10000; try again",
        "expected 12-digit account ids, comma-separated (\"abc\" is not one); try again",
    ] {
        assert!(text(&output).contains(refusal), "{refusal:?}: {}", text(&output));
    }
    let loaded =
        aardvark::config::load(Some(&dir.path().join("answers.yaml")), &Default::default())
            .unwrap();
    assert_eq!(loaded.settings.aws_rolename, "Auditor");
    assert_eq!(loaded.settings.database_uri, "sqlite:///aardvark.db");
    assert_eq!(loaded.settings.updater_num_threads, 3);
    assert_eq!(
        loaded.settings.accounts,
        vec!["111111111111", "222222222222"]
    );
}

#[test]
fn config_converts_an_upstream_config_py() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.py"),
        "ROLENAME = 'Legacy'\nNUM_THREADS = 4\nSQLALCHEMY_DATABASE_URI = 'postgresql+psycopg2://u:p@db/aardvark'\nSWAG_OPTS = {'swag.type': 's3', 'swag.bucket_name': 'b'}\nSWAG_FILTER = None\n",
    )
    .unwrap();
    let mut command = aardvark(dir.path());
    command.args(["config", "--from-legacy", "config.py"]);
    let output = run_with_input(command, "");
    assert!(output.status.success(), "{}", text(&output));
    let loaded =
        aardvark::config::load(Some(&dir.path().join("settings.yaml")), &Default::default())
            .unwrap();
    assert_eq!(loaded.settings.aws_rolename, "Legacy");
    assert_eq!(loaded.settings.updater_num_threads, 4);
    assert_eq!(
        loaded.settings.database_uri,
        "postgresql+psycopg2://u:p@db/aardvark"
    );
    assert_eq!(loaded.settings.swag.unwrap().bucket.as_deref(), Some("b"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

/// An older upstream file (a quoted thread count, the region and partition, LOG_CFG and
/// PHANTOMJS) converts to a file the next command takes; one that would not load is refused
/// before anything is written, so a corrected retry needs no --force.
#[test]
fn config_converts_older_upstream_habits_and_never_writes_a_file_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.py"),
        "NUM_THREADS = \"5\"\nREGION = 'us-gov-west-1'\nARN_PARTITION = 'aws-us-gov'\nLOG_CFG = {'version': 1}\nPHANTOMJS = '/usr/bin/phantomjs'\n",
    )
    .unwrap();
    let mut command = aardvark(dir.path());
    command.args(["config", "--from-legacy", "config.py"]);
    let output = run_with_input(command, "");
    assert!(output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("LOG_FORMAT: json") && said.contains("PHANTOMJS is obsolete"),
        "{said}"
    );
    let loaded =
        aardvark::config::load(Some(&dir.path().join("settings.yaml")), &Default::default())
            .unwrap();
    assert_eq!(loaded.settings.updater_num_threads, 5);
    assert_eq!(loaded.settings.aws_region, "us-gov-west-1");
    assert_eq!(
        loaded.settings.aws_arn_partition,
        aardvark::config::Partition::AwsUsGov
    );

    std::fs::write(dir.path().join("bad.py"), "NUM_THREADS = 0\n").unwrap();
    let mut command = aardvark(dir.path());
    command.args(["config", "--from-legacy", "bad.py", "--output", "bad.yaml"]);
    let output = run_with_input(command, "");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("UPDATER_NUM_THREADS"),
        "{}",
        text(&output)
    );
    assert!(
        !dir.path().join("bad.yaml").exists(),
        "a refused file was written"
    );
}

#[test]
fn create_db_is_idempotent_and_drop_db_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.yaml"),
        "default:\n  SQLALCHEMY_DATABASE_URI: sqlite:///data.db\n",
    )
    .unwrap();
    for name in ["create-db", "create_db"] {
        let output = aardvark(dir.path()).arg(name).output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    assert!(dir.path().join("data.db").exists());
    let declined = run_with_input(
        {
            let mut c = aardvark(dir.path());
            c.arg("drop-db");
            c
        },
        "n\n",
    );
    assert!(
        declined.status.code() == Some(1) && text(&declined).contains("nothing dropped"),
        "{}",
        text(&declined)
    );
    let dropped = aardvark(dir.path())
        .args(["drop_db", "--yes"])
        .output()
        .unwrap();
    assert!(
        dropped.status.success() && text(&dropped).contains("dropped"),
        "{}",
        text(&dropped)
    );
}

#[test]
fn fatal_errors_exit_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "default:\n  UPDATER_NUM_THREADS: -3\n",
    )
    .unwrap();
    let output = aardvark(dir.path())
        .args(["--config", "bad.yaml", "create-db"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("UPDATER_NUM_THREADS must be a whole number"),
        "{}",
        text(&output)
    );

    let output = aardvark(dir.path())
        .arg("create-db")
        .env(
            "AARDVARK_DATABASE_URI",
            "postgresql://nobody@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    // Said once, each cause once.
    let said = text(&output);
    assert_eq!(said.matches("unreachable").count(), 1, "{said}");
    assert_eq!(said.matches("Connection refused").count(), 1, "{said}");

    // A PostgreSQL server without the database: the fix is named.
    let Ok(server) = std::env::var("AARDVARK_TEST_POSTGRES_URL") else {
        println!("AARDVARK_TEST_POSTGRES_URL is not set: the missing-database case is skipped");
        return;
    };
    let (address, _) = server.rsplit_once('/').unwrap();
    let output = aardvark(dir.path())
        .arg("create-db")
        .env(
            "AARDVARK_DATABASE_URI",
            format!("{address}/aardvark_no_such_database"),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = text(&output);
    assert_eq!(said.matches("does not exist").count(), 1, "{said}");
    assert!(said.contains("createdb"), "{said}");
}

#[test]
fn serve_answers_until_terminated() {
    let dir = tempfile::tempdir().unwrap();
    // Upstream's form, its gunicorn worker count included (accepted, explained, no effect).
    let mut child = aardvark(dir.path())
        .args(["start_api", "-b", "127.0.0.1:0", "-w", "4"])
        .env("AARDVARK_DATABASE_URI", "sqlite:///served.db")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stderr is read up to the warning and then closed: the server must go on serving when
    // whoever reads its log goes away (its next log line then finds a closed pipe).
    let stderr = child.stderr.take().unwrap();
    let logged = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("-w/--workers"))
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        assert!(Instant::now() < deadline, "serve printed no address");
        let line = lines.next().expect("serve exited early").unwrap();
        if let Some(rest) = line.strip_prefix("serving on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("ok"),
        "{response}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let warning = logged.join().unwrap().expect("-w is explained in the log");
    assert!(warning.contains("no effect"), "{warning}");
}

/// A wrong flag is refused before the first question, naming the flag (a password masked).
#[test]
fn config_refuses_a_wrong_flag_before_asking_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = aardvark(dir.path());
    command.args(["config", "--database-uri", "mysql://u:hunter2@h/db"]);
    let output = run_with_input(command, "");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("--database-uri: expected a database URI (only sqlite and postgresql databases are supported)"),
        "{said}"
    );
    assert!(!said.contains("Role to assume"), "asked first: {said}");
    assert!(!said.contains("hunter2"), "{said}");
    assert!(!dir.path().join("settings.yaml").exists());
}

/// Upstream's image runs `aardvark config --no-prompt -a ROLE -b BUCKET -d URI`; its long
/// `--aardvark-role` and `--db-uri` work too.
#[test]
fn config_takes_upstreams_flags() {
    for flags in [
        [
            "-a",
            "UpstreamRole",
            "-b",
            "swag-data",
            "-d",
            "sqlite:///x.db",
        ],
        [
            "--aardvark-role",
            "UpstreamRole",
            "--swag-bucket",
            "swag-data",
            "--db-uri",
            "sqlite:///x.db",
        ],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = aardvark(dir.path());
        command.args(["config", "--no-prompt"]).args(flags);
        let settings = written_settings(command, dir.path());
        assert_eq!(settings.aws_rolename, "UpstreamRole");
        assert_eq!(settings.database_uri, "sqlite:///x.db");
        assert_eq!(settings.swag.unwrap().bucket.as_deref(), Some("swag-data"));
    }

    // With SWAG, --accounts chooses among SWAG's accounts by name.
    let dir = tempfile::tempdir().unwrap();
    let mut command = aardvark(dir.path());
    command.args([
        "config",
        "--no-prompt",
        "-b",
        "swag-data",
        "--accounts",
        "prod, 111111111111",
    ]);
    assert_eq!(
        written_settings(command, dir.path()).accounts,
        ["prod", "111111111111"]
    );
}

/// `aardvark update` as operators run it: endpoint and credentials from the standard AWS
/// variables, JSON log lines, a summary naming each failure, exit 2 when anything failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_reports_failures_and_exits_2() {
    let scenario = aws_sim::Scenario::generated(3, 4, 4).with_account_faults(
        "100000000002",
        aws_sim::AccountFaults {
            assume_role: Some(aws_sim::AssumeRoleFault::ScpDeny),
            ..Default::default()
        },
    );
    let sim = aws_sim::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.yaml"),
        "default:\n  SQLALCHEMY_DATABASE_URI: sqlite:///collected.db\n  ACCOUNTS: ['100000000000', '100000000001', '100000000002']\n  UPDATER_POLL_INTERVAL_MS: 5\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = aardvark(dir.path());
        command
            .args(args)
            .env("AWS_ENDPOINT_URL", &sim.base_url)
            .env("AWS_ACCESS_KEY_ID", "AKIDHUB")
            .env("AWS_SECRET_ACCESS_KEY", "hub-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-aws-credentials"),
            );
        command
    };
    let output = tokio::task::spawn_blocking({
        let mut command = run(&["--log-format", "json", "update"]);
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("3 accounts (2 ok, 0 partial, 1 failed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("100000000002: AccessDenied")
            && stdout.contains("explicit deny in a service control policy"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines().filter(|l| !l.is_empty()) {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    assert!(stderr.contains("\"account done\""), "{stderr}");

    let output = tokio::task::spawn_blocking({
        let mut command = run(&[
            "update",
            "-a",
            "100000000000",
            "-a",
            "100000000001,100000000000",
        ]);
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("2 accounts (2 ok, 0 partial, 0 failed)"),
        "{}",
        text(&output)
    );

    let output = tokio::task::spawn_blocking({
        let mut command = run(&["update", "-a", "not-an-account"]);
        move || command.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("\"not-an-account\" is neither a 12-digit account id"),
        "{}",
        text(&output)
    );
}
