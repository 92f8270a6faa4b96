//! `aardvark report findings`: the findings of `/api/1/findings`, read from the database
//! without a server, as a table, CSV, JSON, or ASFF (the AWS Security Finding Format, a JSON
//! array that `aws securityhub batch-import-findings --findings file://...` takes as it is).

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::ValueEnum;
use serde_json::json;

use crate::arn::AccountId;
use crate::config::Settings;
use crate::db::findings::{FindingFilter, FindingStatus, FindingType, StoredFinding};
use crate::db::Database;
use crate::named::Named;
use crate::time::rfc3339_seconds;

/// Findings read per page.
const PAGE: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FindingsFormat {
    Table,
    Csv,
    Json,
    Asff,
}

#[derive(Debug, clap::Args)]
pub struct FindingsArgs {
    /// Only findings of this type: unused_role, unused_access_key, unused_password or
    /// unused_permission.
    #[arg(long = "type", value_parser = finding_type)]
    pub kind: Option<FindingType>,
    /// Only findings with this status: active, resolved or archived.
    #[arg(long, value_parser = status)]
    pub status: Option<FindingStatus>,
    /// Only this account (a 12-digit id).
    #[arg(long, value_parser = super::report::account_id)]
    pub account: Option<AccountId>,
    /// Output format (default: table on a terminal, csv otherwise).
    #[arg(long, value_enum)]
    pub format: Option<FindingsFormat>,
}

fn finding_type(text: &str) -> Result<FindingType, String> {
    FindingType::from_name(text).ok_or_else(FindingType::choices)
}

fn status(text: &str) -> Result<FindingStatus, String> {
    FindingStatus::from_name(text).ok_or_else(FindingStatus::choices)
}

pub async fn run(db: &Database, settings: &Settings, args: &FindingsArgs) -> anyhow::Result<()> {
    crate::findings::keep_rules_current(db, &settings.finding_rules()).await;
    let filter = FindingFilter {
        kind: args.kind,
        status: args.status,
        account: args.account.as_ref().map(ToString::to_string),
        arn: None,
    };
    let mut findings = Vec::new();
    loop {
        let (total, page) = db
            .findings_page(&filter, findings.len() as i64, PAGE)
            .await
            .context("cannot read the findings")?;
        let done = page.is_empty() || findings.len() as i64 + page.len() as i64 >= total;
        findings.extend(page);
        if done {
            break;
        }
    }
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        FindingsFormat::Table
    } else {
        FindingsFormat::Csv
    });
    let mut out = std::io::stdout().lock();
    match format {
        FindingsFormat::Json => {
            let entries: Vec<crate::api::findings::FindingEntry> =
                findings.into_iter().map(Into::into).collect();
            serde_json::to_writer_pretty(&mut out, &json!({ "findings": entries }))?;
            writeln!(out)?;
        }
        FindingsFormat::Asff => {
            let asff: Vec<serde_json::Value> = findings.iter().map(|f| asff(f, settings)).collect();
            serde_json::to_writer_pretty(&mut out, &asff)?;
            writeln!(out)?;
        }
        FindingsFormat::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record(COLUMNS)?;
            for finding in &findings {
                csv.write_record(row(finding))?;
            }
            csv.flush()?;
        }
        FindingsFormat::Table => {
            let mut rows = vec![COLUMNS.iter().map(|c| c.to_uppercase()).collect()];
            rows.extend(findings.iter().map(row));
            super::report::write_columns(&mut out, &rows)?;
            if findings.is_empty() {
                writeln!(out, "no findings match")?;
            }
        }
    }
    Ok(())
}

const COLUMNS: [&str; 8] = [
    "id",
    "type",
    "status",
    "account",
    "resource",
    "first_seen",
    "last_seen",
    "reason",
];

fn row(finding: &StoredFinding) -> Vec<String> {
    vec![
        finding.id.clone(),
        finding.kind.as_str().to_owned(),
        finding.status.as_str().to_owned(),
        finding.account.clone(),
        finding.resource.clone(),
        rfc3339_seconds(&finding.first_seen),
        rfc3339_seconds(&finding.last_seen),
        finding.reason.clone().unwrap_or_default(),
    ]
}

/// Title, severity and the ASFF resource type of a finding type.
fn described(kind: FindingType) -> (&'static str, &'static str, &'static str) {
    match kind {
        FindingType::UnusedRole => ("Unused IAM role", "LOW", "AwsIamRole"),
        FindingType::UnusedAccessKey => ("Unused IAM user access key", "MEDIUM", "AwsIamAccessKey"),
        FindingType::UnusedPassword => ("Unused IAM user password", "MEDIUM", "AwsIamUser"),
        FindingType::UnusedPermission => ("Unused permissions", "LOW", "AwsIamRole"),
    }
}

/// One finding in the AWS Security Finding Format, as Security Hub's `BatchImportFindings`
/// takes a finding of one's own (`ProductArn` of the account's `default` product).
pub fn asff(finding: &StoredFinding, settings: &Settings) -> serde_json::Value {
    let (title, severity, mut resource_type) = described(finding.kind);
    if finding.kind == FindingType::UnusedPermission && finding.principal.contains(":user/") {
        resource_type = "AwsIamUser";
    }
    let partition = settings.aws_arn_partition.as_str();
    let region = &settings.aws_region;
    let account = &finding.account;
    let days = finding
        .evidence
        .get("window_days")
        .and_then(|d| d.as_i64())
        .unwrap_or(0);
    let (workflow, record_state) = match finding.status {
        FindingStatus::Active => ("NEW", "ACTIVE"),
        FindingStatus::Resolved => ("RESOLVED", "ARCHIVED"),
        FindingStatus::Archived => ("SUPPRESSED", "ARCHIVED"),
    };
    json!({
        "SchemaVersion": "2018-10-08",
        "Id": format!("aardvark/{}", finding.id),
        "ProductArn": format!("arn:{partition}:securityhub:{region}:{account}:product/{account}/default"),
        "GeneratorId": format!("aardvark/{}", finding.kind.as_str()),
        "AwsAccountId": account,
        "Types": ["Software and Configuration Checks/AWS Security Best Practices/Unused Access"],
        "CreatedAt": rfc3339_seconds(&finding.first_seen),
        "UpdatedAt": rfc3339_seconds(&finding.updated_at),
        "FirstObservedAt": rfc3339_seconds(&finding.first_seen),
        "LastObservedAt": rfc3339_seconds(&finding.last_seen),
        "Severity": {"Label": severity},
        "Title": title,
        "Description": format!("{title}: {} not used in the last {days} days (aardvark).", finding.resource),
        "Resources": [{
            "Type": resource_type,
            "Id": finding.resource,
            "Partition": partition,
            "Region": region,
            "Details": {"Other": {"principal": finding.principal}},
        }],
        "Workflow": {"Status": workflow},
        "RecordState": record_state,
        "ProductFields": {
            "aardvark/type": finding.kind.as_str(),
            "aardvark/status": finding.status.as_str(),
            "aardvark/evidence": finding.evidence.to_string(),
        },
    })
}
