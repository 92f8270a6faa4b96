//! `aws-sim --scenario FILE --port P` as a process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_serves_a_scenario_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, "generated: {count: 3, principals: {roles: 1}}\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aws-sim"))
        .args(["--scenario", path.to_str().unwrap(), "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("aws-sim listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            "AKIDHUB", "s", None, None, "t",
        ))
        .load()
        .await;
    let orgs = aws_sdk_organizations::Client::new(&config);
    let listed = orgs.list_accounts().send().await.unwrap();
    assert_eq!(listed.accounts().len(), 3);
    child.kill().unwrap();
    child.wait().unwrap();

    let bad = Command::new(env!("CARGO_BIN_EXE_aws-sim"))
        .args(["--scenario", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.yaml"));
}
