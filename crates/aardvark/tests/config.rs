//! Settings from every source, and every kind of error, naming the file, the key and what was
//! expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aardvark::config::{
    load_searching, AccountSource, ConfigError, LogFormat, Partition, Settings,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FILE: &str = r#"
default:
  AWS_ROLENAME: FromDefault
  sqlalchemy_database_uri: sqlite:////var/lib/aardvark/aardvark.db
  UPDATER_NUM_THREADS: 7
  SQLALCHEMY_TRACK_MODIFICATIONS: false
  LOG_CFG: {version: 1}
  SWAG:
    bucket: swag-bucket
    filter: "[?provider=='aws']"
    opts: {swag.region: us-west-2, schema_version: 2}
testing:
  aws_rolename: FromTesting
  UPDATER_FAILING_ARNS: [arn:aws:iam::1:role/x]
"#;

#[test]
fn nothing_configured_gives_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_searching(None, &[dir.path().join("settings.yaml")], &env(&[])).unwrap();
    assert_eq!(loaded.settings, Settings::default());
    assert_eq!(loaded.settings.database_uri, "sqlite:///aardvark.db");
    assert_eq!(loaded.settings.aws_rolename, "Aardvark");
    assert!(loaded.warnings.is_empty());
}

#[test]
fn default_section_then_chosen_environment_with_case_insensitive_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "settings.yaml", FILE);
    let loaded = load_searching(Some(&file), &[], &env(&[])).unwrap();
    let settings = &loaded.settings;
    assert_eq!(settings.aws_rolename, "FromDefault");
    assert_eq!(
        settings.database_uri,
        "sqlite:////var/lib/aardvark/aardvark.db"
    );
    assert_eq!(settings.updater_num_threads, 7);
    assert_eq!(
        settings.account_source,
        AccountSource::Swag,
        "SWAG with a bucket means SWAG"
    );
    let swag = settings.swag.as_ref().unwrap();
    assert_eq!(swag.bucket.as_deref(), Some("swag-bucket"));
    assert_eq!(swag.filter.as_deref(), Some("[?provider=='aws']"));
    assert_eq!(swag.opts["swag.region"], "us-west-2");
    assert_eq!(swag.opts["schema_version"], "2");
    // Keys that change nothing are silent; LOG_CFG, whose log file is lost, says so.
    assert!(
        loaded.warnings.len() == 1 && loaded.warnings[0].contains("LOG_CFG"),
        "only LOG_CFG warns: {:?}",
        loaded.warnings
    );
    assert_eq!(settings.file.as_deref(), Some(file.as_path()));

    let testing = load_searching(Some(&file), &[], &env(&[("AARDVARK_ENV", "TESTING")])).unwrap();
    assert_eq!(testing.settings.aws_rolename, "FromTesting");
    assert_eq!(
        testing.settings.updater_num_threads, 7,
        "default section still applies"
    );
    assert_eq!(
        testing.settings.updater_failing_arns,
        vec!["arn:aws:iam::1:role/x"]
    );

    let missing =
        load_searching(Some(&file), &[], &env(&[("AARDVARK_ENV", "production")])).unwrap();
    assert!(
        missing.warnings[0].contains("no section production"),
        "{:?}",
        missing.warnings
    );
}

#[test]
fn search_order_takes_the_first_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let second = write(
        dir.path(),
        "second.yaml",
        "default:\n  AWS_REGION: eu-west-1\n",
    );
    let search = [
        dir.path().join("absent.yaml"),
        second.clone(),
        write(dir.path(), "third.yaml", "default:\n  AWS_REGION: x\n"),
    ];
    let loaded = load_searching(None, &search, &env(&[])).unwrap();
    assert_eq!(loaded.settings.aws_region, "eu-west-1");
    assert_eq!(loaded.settings.file, Some(second));
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "settings.yaml", FILE);
    let loaded = load_searching(
        Some(&file),
        &[],
        &env(&[
            ("AARDVARK_AWS_ROLENAME", "FromEnv"),
            ("AARDVARK_updater_num_threads", "12"),
            ("AARDVARK_UPDATER_PRUNE", "true"),
            ("AARDVARK_SWAG__BUCKET", "env-bucket"),
            ("AARDVARK_SWAG__OPTS__REGION", "eu-central-1"),
            ("AARDVARK_LOG_FORMAT", "json"),
            ("AARDVARK_TEST_POSTGRES_URL", "not a setting, ignored"),
        ]),
    )
    .unwrap();
    let settings = loaded.settings;
    assert_eq!(settings.aws_rolename, "FromEnv");
    assert_eq!(settings.updater_num_threads, 12);
    assert!(settings.updater_prune);
    assert_eq!(settings.log_format, LogFormat::Json);
    let swag = settings.swag.unwrap();
    assert_eq!(swag.bucket.as_deref(), Some("env-bucket"));
    assert_eq!(
        swag.filter.as_deref(),
        Some("[?provider=='aws']"),
        "nested override keeps siblings"
    );
    assert_eq!(swag.opts["region"], "eu-central-1");
}

/// One order for every source, highest first: `AARDVARK_<KEY>`, upstream's Docker variables,
/// the chosen section of the file, its `default` section, values derived from another setting
/// (`AARDVARK_DATA_DIR`), built-in defaults. Each source is taken away from the top in turn.
#[test]
fn every_source_has_one_place_in_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let with_section = write(
        dir.path(),
        "sections.yaml",
        "default:\n  SQLALCHEMY_DATABASE_URI: postgresql://default-section/a\nprod:\n  SQLALCHEMY_DATABASE_URI: postgresql://chosen-section/a\n",
    );
    let default_only = write(
        dir.path(),
        "default.yaml",
        "default:\n  SQLALCHEMY_DATABASE_URI: postgresql://default-section/a\n",
    );
    let empty = write(dir.path(), "empty.yaml", "");
    let ours = ("AARDVARK_SQLALCHEMY_DATABASE_URI", "postgresql://ours/a");
    let docker = ("AARDVARK_DATABASE_URI", "postgresql://docker/a");
    let derived = ("AARDVARK_DATA_DIR", "/data");
    let chosen = ("AARDVARK_ENV", "prod");
    let cases = [
        (
            &with_section,
            vec![ours, docker, derived, chosen],
            "postgresql://ours/a",
        ),
        (
            &with_section,
            vec![docker, derived, chosen],
            "postgresql://docker/a",
        ),
        (
            &with_section,
            vec![derived, chosen],
            "postgresql://chosen-section/a",
        ),
        (
            &default_only,
            vec![derived, chosen],
            "postgresql://default-section/a",
        ),
        (&empty, vec![derived], "sqlite:////data/aardvark.db"),
        (&empty, vec![], "sqlite:///aardvark.db"),
    ];
    for (file, vars, expected) in cases {
        let loaded = load_searching(Some(file.as_path()), &[], &env(&vars)).unwrap();
        assert_eq!(
            loaded.settings.database_uri,
            expected,
            "{vars:?} over {}",
            file.display()
        );
    }
}

/// AWS's own region variables rank below every aardvark source, in the SDK's order, and a
/// GovCloud or China region brings its partition unless one is set.
#[test]
fn aws_region_variables_and_the_partition_they_imply() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.yaml", "");
    let with_region = write(
        dir.path(),
        "region.yaml",
        "default:\n  AWS_REGION: eu-central-1\n",
    );
    let gov_but_aws = write(
        dir.path(),
        "partition.yaml",
        "default:\n  AWS_ARN_PARTITION: aws\n",
    );
    let cases = [
        (&empty, vec![], "us-east-1", Partition::Aws),
        (
            &empty,
            vec![("AWS_DEFAULT_REGION", "us-gov-west-1")],
            "us-gov-west-1",
            Partition::AwsUsGov,
        ),
        (
            &empty,
            vec![
                ("AWS_REGION", "cn-north-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ],
            "cn-north-1",
            Partition::AwsCn,
        ),
        (
            &with_region,
            vec![("AWS_REGION", "us-west-2")],
            "eu-central-1",
            Partition::Aws,
        ),
        (
            &with_region,
            vec![
                ("AWS_REGION", "us-west-2"),
                ("AARDVARK_AWS_REGION", "us-gov-east-1"),
            ],
            "us-gov-east-1",
            Partition::AwsUsGov,
        ),
        (
            &gov_but_aws,
            vec![("AWS_DEFAULT_REGION", "us-gov-west-1")],
            "us-gov-west-1",
            Partition::Aws,
        ),
    ];
    for (file, vars, region, partition) in cases {
        let settings = load_searching(Some(file.as_path()), &[], &env(&vars))
            .unwrap()
            .settings;
        assert_eq!(
            (settings.aws_region.as_str(), settings.aws_arn_partition),
            (region, partition),
            "{vars:?} over {}",
            file.display()
        );
    }
}

/// The container's case: the image sets `AARDVARK_DATA_DIR`, the mounted settings file names
/// PostgreSQL, and PostgreSQL is what is used.
#[test]
fn a_derived_default_never_outranks_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "settings.yaml",
        "default:\n  SQLALCHEMY_DATABASE_URI: postgresql://aardvark@db.internal/aardvark\n",
    );
    let loaded = load_searching(
        Some(&file),
        &[],
        &env(&[("AARDVARK_DATA_DIR", "/var/lib/aardvark")]),
    )
    .unwrap();
    assert_eq!(
        loaded.settings.database_uri,
        "postgresql://aardvark@db.internal/aardvark"
    );
}

#[test]
fn upstream_docker_variables_work() {
    let loaded = load_searching(
        None,
        &[],
        &env(&[
            ("AARDVARK_ROLE", "DockerRole"),
            ("AARDVARK_ACCOUNTS", "111111111111, 222222222222"),
            ("AARDVARK_DATA_DIR", "/data"),
            ("AWS_ARN_PARTITION", "aws-us-gov"),
        ]),
    )
    .unwrap();
    let settings = loaded.settings;
    assert_eq!(settings.aws_rolename, "DockerRole");
    assert_eq!(settings.accounts, vec!["111111111111", "222222222222"]);
    assert_eq!(settings.database_uri, "sqlite:////data/aardvark.db");
    assert_eq!(settings.aws_arn_partition, Partition::AwsUsGov);
    let explicit = load_searching(
        None,
        &[],
        &env(&[
            ("AARDVARK_DATA_DIR", "/data"),
            ("AARDVARK_DATABASE_URI", "postgresql://db/aardvark"),
        ]),
    )
    .unwrap();
    assert_eq!(explicit.settings.database_uri, "postgresql://db/aardvark");
}

#[test]
fn unknown_keys_warn_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "settings.yaml",
        "default:\n  AWS_ROLNAME: typo\n  SWAG:\n    buckett: x\n",
    );
    let loaded = load_searching(Some(&file), &[], &env(&[])).unwrap();
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("AWS_ROLNAME")
            && loaded.warnings[0].contains(&file.display().to_string()),
        "{:?}",
        loaded.warnings
    );
    assert!(
        loaded.warnings[1].contains("SWAG.buckett"),
        "{:?}",
        loaded.warnings
    );
}

/// An unknown key names the nearest known one; a key whose effect is lost says so and what
/// to use instead.
#[test]
fn unknown_keys_suggest_the_nearest_and_lost_keys_say_what_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "settings.yaml",
        "default:\n  ROLENAME: Aardvark\n  AWS_ROLNAME: typo\n  LOG_CFG: {version: 1}\n  PHANTOMJS: /usr/bin/phantomjs\n  SOMETHING_ELSE_ENTIRELY: 1\n",
    );
    let warnings = load_searching(Some(&file), &[], &env(&[]))
        .unwrap()
        .warnings
        .join("\n");
    for expected in [
        "unknown setting ROLENAME ignored; did you mean AWS_ROLENAME?",
        "unknown setting AWS_ROLNAME ignored; did you mean AWS_ROLENAME?",
        "LOG_CFG (Python's logging configuration, and the log file it wrote) has no equivalent",
        "PHANTOMJS is obsolete",
        "unknown setting SOMETHING_ELSE_ENTIRELY ignored (a typo?)",
    ] {
        assert!(
            warnings.contains(expected),
            "{expected:?} not in {warnings}"
        );
    }
}

fn error_of(yaml: &str, vars: &[(&str, &str)]) -> (String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "settings.yaml", yaml);
    let err = load_searching(Some(&file), &[], &env(vars)).unwrap_err();
    (err.to_string(), file)
}

#[test]
fn wrong_types_and_values_are_errors_naming_key_file_and_expectation() {
    for (yaml, key, expected) in [
        (
            "default:\n  UPDATER_NUM_THREADS: many\n",
            "UPDATER_NUM_THREADS",
            "a whole number from 1 to 10000",
        ),
        (
            "default:\n  UPDATER_NUM_THREADS: 0\n",
            "UPDATER_NUM_THREADS",
            "a whole number",
        ),
        (
            "default:\n  AWS_ARN_PARTITION: aws-mars\n",
            "AWS_ARN_PARTITION",
            "one of aws, aws-us-gov, aws-cn",
        ),
        (
            "default:\n  SQLALCHEMY_DATABASE_URI: mysql://x/y\n",
            "SQLALCHEMY_DATABASE_URI",
            "a database URI",
        ),
        (
            "default:\n  AWS_ROLENAME: [a]\n",
            "AWS_ROLENAME",
            "a non-empty string",
        ),
        (
            "default:\n  AWS_ROLENAME: 'Bad Role!'\n",
            "AWS_ROLENAME",
            "an IAM role name: 1 to 64 letters, digits and +=,.@_-",
        ),
        (
            "default:\n  UPDATER_PRUNE: sometimes\n",
            "UPDATER_PRUNE",
            "true or false",
        ),
        ("default:\n  SWAG: bucket\n", "SWAG", "a mapping"),
        (
            "default:\n  SWAG: {filter: [1]}\n",
            "SWAG.filter",
            "a string",
        ),
        (
            "default:\n  ACCOUNT_SOURCE: ldap\n",
            "ACCOUNT_SOURCE",
            "one of static, swag, organizations",
        ),
    ] {
        let (message, file) = error_of(yaml, &[]);
        assert!(message.contains(key), "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(message.contains(&file.display().to_string()), "{message}");
        assert!(message.contains("section default"), "{message}");
    }
    let (message, _) = error_of("", &[("AARDVARK_UPDATER_NUM_THREADS", "lots")]);
    assert!(
        message.contains("environment variable AARDVARK_UPDATER_NUM_THREADS"),
        "{message}"
    );
    assert!(message.contains("the string \"lots\""), "{message}");
}

#[test]
fn unreadable_and_malformed_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.yaml");
    let err = load_searching(Some(&absent), &[], &env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("absent.yaml"), "{err}");
    let (message, file) = error_of("default:\n  AWS_ROLENAME: [unclosed\n", &[]);
    assert!(
        message.contains("not valid YAML") && message.contains(&file.display().to_string()),
        "{message}"
    );
    let (message, _) = error_of("- a list\n", &[]);
    assert!(message.contains("expected a mapping"), "{message}");
}

/// The service's settings: a schedule in people's units, tokens from a list or a
/// comma-separated variable (and as digests), TLS files, the shutdown deadline; and errors
/// that never show a token.
#[test]
fn service_settings_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "settings.yaml",
        "default:\n  COLLECT_EVERY: 6h\n  API_TOKENS: [first-token, 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08']\n  METRICS_REQUIRE_TOKEN: true\n  TLS_CERT_FILE: /etc/aardvark/chain.pem\n  TLS_KEY_FILE: /etc/aardvark/key.pem\n  SHUTDOWN_TIMEOUT_SECONDS: 5\n",
    );
    let settings = load_searching(Some(&file), &[], &env(&[]))
        .unwrap()
        .settings;
    assert_eq!(
        settings.collect_every,
        Some(std::time::Duration::from_secs(6 * 3600))
    );
    assert!(settings.api_tokens.accepts(b"first-token"));
    assert!(settings.api_tokens.accepts(b"test"), "sha256 of \"test\"");
    assert!(!settings
        .api_tokens
        .accepts(b"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
    assert!(settings.metrics_require_token);
    assert_eq!(
        settings.tls_cert_file.as_deref(),
        Some(Path::new("/etc/aardvark/chain.pem"))
    );
    assert_eq!(
        settings.tls_key_file.as_deref(),
        Some(Path::new("/etc/aardvark/key.pem"))
    );
    assert_eq!(settings.shutdown_timeout, std::time::Duration::from_secs(5));
    assert!(
        !format!("{settings:?}").contains("first-token"),
        "Debug shows no token"
    );

    let from_env = load_searching(
        None,
        &[],
        &env(&[
            ("AARDVARK_API_TOKENS", "one, two"),
            ("AARDVARK_COLLECT_EVERY", "1d"),
        ]),
    )
    .unwrap()
    .settings;
    assert!(from_env.api_tokens.accepts(b"one") && from_env.api_tokens.accepts(b"two"));
    assert!(!from_env.api_tokens.accepts(b"one, two"));
    assert_eq!(
        from_env.collect_every,
        Some(std::time::Duration::from_secs(86_400))
    );
    let defaults = Settings::default();
    assert!(!defaults.api_tokens.is_enabled());
    assert_eq!(defaults.collect_every, None);
    assert_eq!(
        defaults.shutdown_timeout,
        std::time::Duration::from_secs(30)
    );

    for (yaml, key, expected) in [
        (
            "default:\n  COLLECT_EVERY: often\n",
            "COLLECT_EVERY",
            "a duration such as 30m, 6h or 1d",
        ),
        (
            "default:\n  COLLECT_EVERY: 0s\n",
            "COLLECT_EVERY",
            "from 1s to 365d",
        ),
        (
            "default:\n  COLLECT_EVERY: 400d\n",
            "COLLECT_EVERY",
            "from 1s to 365d",
        ),
        (
            "default:\n  SHUTDOWN_TIMEOUT_SECONDS: -1\n",
            "SHUTDOWN_TIMEOUT_SECONDS",
            "a whole number from 0 to 3600",
        ),
        (
            "default:\n  TLS_CERT_FILE: [a]\n",
            "TLS_CERT_FILE",
            "a file path",
        ),
        (
            "default:\n  METRICS_REQUIRE_TOKEN: maybe\n",
            "METRICS_REQUIRE_TOKEN",
            "true or false",
        ),
        (
            "default:\n  API_TOKENS: ['has space-secret']\n",
            "API_TOKENS",
            "white space",
        ),
        (
            "default:\n  API_TOKENS: ['sha256:abc-secret']\n",
            "API_TOKENS",
            "64 hexadecimal digits",
        ),
        (
            "default:\n  API_TOKENS: {a: b}\n",
            "API_TOKENS",
            "a list of tokens",
        ),
    ] {
        let (message, file) = error_of(yaml, &[]);
        assert!(message.contains(key), "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(message.contains(&file.display().to_string()), "{message}");
        assert!(!message.contains("secret"), "a token was shown: {message}");
    }
}
