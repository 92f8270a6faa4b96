//! `aardvark report unused`: the unused-access answers of `/api/1/unused` and
//! `/api/1/unused/accounts`, read from the database without a server and sorted for people
//! (per account: unused principals first, then by how much is unused; too new ones last).

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;

use crate::arn::AccountId;
use crate::db::usage::AccountUnused;
use crate::db::{Database, Reader};
use crate::named::Named;
use crate::unused::{self, PrincipalKind, PrincipalUnused, Selection, DEFAULT_DAYS, MAX_DAYS};

/// Principals read per page.
const PAGE: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct UnusedArgs {
    /// The window: the last N days. A service is used when its last use is inside it.
    #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(i64).range(1..=MAX_DAYS))]
    pub days: i64,
    /// Only this account (a 12-digit id).
    #[arg(long, value_parser = account_id)]
    pub account: Option<AccountId>,
    /// Only principals of this kind: role, user, group or policy.
    #[arg(long, value_parser = kind)]
    pub kind: Option<PrincipalKind>,
    /// Output format (default: table on a terminal, csv otherwise).
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
}

pub(super) fn account_id(text: &str) -> Result<AccountId, &'static str> {
    text.parse()
}

fn kind(text: &str) -> Result<PrincipalKind, String> {
    PrincipalKind::from_name(text).ok_or_else(PrincipalKind::choices)
}

/// What `--format json` prints.
#[derive(Serialize)]
struct Report {
    accounts: Vec<AccountUnused>,
    days: i64,
    principals: Vec<PrincipalUnused>,
}

pub async fn run(db: &Database, args: &UnusedArgs) -> anyhow::Result<()> {
    let selection = Selection {
        account: args.account.clone(),
        kind: args.kind,
        ..Selection::default()
    };
    let since = unused::window_start(chrono::Utc::now().timestamp_millis(), args.days);
    let reader = Reader::new(db.clone());
    let filter = selection.filter();
    let mut principals = Vec::new();
    for page in 1.. {
        let (total, found) = reader
            .unused_page(&filter, page, PAGE)
            .await
            .context("cannot read the stored principals")?;
        principals.extend(found.into_iter().map(|p| unused::assess(p, since)));
        if page * PAGE >= total {
            break;
        }
    }
    if let Some(account) = args.account.as_deref().filter(|_| principals.is_empty()) {
        let stored = reader
            .principals_per_account()
            .await
            .context("cannot read the stored principals")?;
        if !stored.contains_key(account) {
            anyhow::bail!(
                "no principal of account {account} is stored: is it collected? (`aardvark update -a {account}`)"
            );
        }
    }
    principals.sort_by(|a, b| {
        (
            &a.account,
            a.too_new,
            !a.unused_principal,
            std::cmp::Reverse(a.unused.len()),
            &a.arn,
        )
            .cmp(&(
                &b.account,
                b.too_new,
                !b.unused_principal,
                std::cmp::Reverse(b.unused.len()),
                &b.arn,
            ))
    });
    let accounts = reader
        .kept_uses()
        .await
        .context("cannot read the accounts' totals")?
        .totals(
            since,
            selection.account.as_deref(),
            selection.kind.map(|kind| kind.as_str()),
        );
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        ReportFormat::Table
    } else {
        ReportFormat::Csv
    });
    let mut out = std::io::stdout().lock();
    match format {
        ReportFormat::Json => {
            let report = Report {
                accounts,
                days: args.days,
                principals,
            };
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        ReportFormat::Csv => write_csv(&mut out, &principals)?,
        ReportFormat::Table => write_table(&mut out, &principals, &accounts, args.days)?,
    }
    Ok(())
}

/// A last use as a day, or `never` (0: none in AWS's window).
fn day(ms: i64) -> String {
    match crate::time::day_from_millis(ms) {
        Some(day) if ms > 0 => day,
        _ => "never".into(),
    }
}

fn unused_namespaces(principal: &PrincipalUnused) -> String {
    principal
        .unused
        .iter()
        .filter_map(|service| service.service_namespace.as_deref())
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_csv(out: &mut impl Write, principals: &[PrincipalUnused]) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "account",
        "kind",
        "arn",
        "created",
        "last_used",
        "unused_principal",
        "too_new",
        "used_services",
        "unused_services",
        "unused",
    ])?;
    for p in principals {
        csv.write_record([
            p.account.clone(),
            p.kind.clone(),
            p.arn.clone(),
            p.created.clone().unwrap_or_default(),
            day(p.last_used),
            p.unused_principal.to_string(),
            p.too_new.to_string(),
            p.used.len().to_string(),
            p.unused.len().to_string(),
            unused_namespaces(p),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

/// Rows of cells as columns padded to their widest cell.
pub(super) fn write_columns(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|at| {
            rows.iter()
                .map(|row| row[at].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (at, cell) in row.iter().enumerate() {
            if at + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[at]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    principals: &[PrincipalUnused],
    accounts: &[AccountUnused],
    days: i64,
) -> anyhow::Result<()> {
    let mut rows = vec![[
        "ACCOUNT",
        "KIND",
        "ARN",
        "LAST USED",
        "FLAGS",
        "UNUSED SERVICES",
    ]
    .map(str::to_owned)
    .to_vec()];
    for p in principals {
        let flags = match (p.unused_principal, p.too_new) {
            (_, true) => "too new",
            (true, false) => "unused",
            (false, false) => "",
        };
        rows.push(vec![
            p.account.clone(),
            p.kind.clone(),
            p.arn.clone(),
            day(p.last_used),
            flags.to_owned(),
            unused_namespaces(p),
        ]);
    }
    write_columns(out, &rows)?;
    writeln!(out)?;
    writeln!(
        out,
        "Per account, over the last {days} days (principals too new are in neither count):"
    )?;
    let mut rows = vec![[
        "ACCOUNT",
        "PRINCIPALS",
        "UNUSED",
        "WITH UNUSED SERVICES",
        "TOO NEW",
    ]
    .map(str::to_owned)
    .to_vec()];
    for a in accounts {
        rows.push(vec![
            a.account.clone(),
            a.principals.to_string(),
            a.unused.to_string(),
            a.with_unused_services.to_string(),
            a.too_new.to_string(),
        ]);
    }
    write_columns(out, &rows)?;
    Ok(())
}
