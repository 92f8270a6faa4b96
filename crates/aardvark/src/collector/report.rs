//! What a run did: per-account outcomes, failed principals, ARNs not found; the terminal
//! summary; and the run's exit code.

use std::time::Duration;

use super::aws::Failure;
pub use crate::db::runs::AccountStatus;
use crate::db::runs::{
    AccountRecord, PartStatus, RecordedFailure, RecordedPart, RunOwner, RunStatus, RunTotals,
};

/// Why a principal has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalError {
    /// Deleted between listing and collection (`NoSuchEntity`): skipped, stored rows untouched.
    Vanished(Failure),
    Failed(Failure),
    /// The run was asked to stop before the principal was collected: not a failure.
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalFailure {
    pub arn: String,
    pub failure: Failure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountReport {
    pub id: String,
    pub name: Option<String>,
    pub status: AccountStatus,
    /// Why the account failed.
    pub failure: Option<Failure>,
    /// Every principal the account lists (before `-r`).
    pub listed: Vec<String>,
    pub collected: usize,
    pub failed: Vec<PrincipalFailure>,
    pub vanished: Vec<String>,
    /// Principals left uncollected because the run was asked to stop.
    pub interrupted: usize,
    /// `-r` ARNs of this account that its listing did not hold.
    pub not_found: Vec<String>,
    /// Principals `--prune` deleted because the listing no longer held them.
    pub pruned: Vec<String>,
    /// Identity details, collected or not (best effort: never fails the account).
    pub parts: Vec<RecordedPart>,
    pub started_at: String,
    pub duration: Duration,
    /// The process that collected the account (set when it is recorded).
    pub worker: Option<RunOwner>,
    /// Which attempt at the account this was in its run (more than 1 when another worker's
    /// lease on it expired).
    pub attempts: i64,
}

impl AccountReport {
    pub fn failed_account(
        id: &str,
        name: Option<String>,
        failure: Failure,
        started_at: String,
        duration: Duration,
    ) -> Self {
        Self {
            id: id.to_owned(),
            name,
            status: AccountStatus::Failed,
            failure: Some(failure),
            listed: Vec::new(),
            collected: 0,
            failed: Vec::new(),
            vanished: Vec::new(),
            interrupted: 0,
            not_found: Vec::new(),
            pruned: Vec::new(),
            parts: Vec::new(),
            started_at,
            duration,
            worker: None,
            attempts: 1,
        }
    }

    /// The report of an account whose listing succeeded, from each collected principal's
    /// outcome: `Partial` when any principal failed, else `Interrupted` when the run stopped
    /// before some were collected, else `Ok` (vanished principals are not failures); failed
    /// and vanished principals sorted by ARN. Pruning, ARNs not found, start and duration are
    /// the caller's to fill in.
    pub(crate) fn from_outcomes(
        id: &str,
        name: Option<String>,
        listed: Vec<String>,
        outcomes: Vec<(String, Result<(), PrincipalError>)>,
    ) -> Self {
        let mut report = Self {
            id: id.to_owned(),
            name,
            status: AccountStatus::Ok,
            failure: None,
            listed,
            collected: 0,
            failed: Vec::new(),
            vanished: Vec::new(),
            interrupted: 0,
            not_found: Vec::new(),
            pruned: Vec::new(),
            parts: Vec::new(),
            started_at: String::new(),
            duration: Duration::ZERO,
            worker: None,
            attempts: 1,
        };
        for (arn, outcome) in outcomes {
            match outcome {
                Ok(()) => report.collected += 1,
                Err(PrincipalError::Vanished(_)) => report.vanished.push(arn),
                Err(PrincipalError::Failed(failure)) => {
                    report.failed.push(PrincipalFailure { arn, failure })
                }
                Err(PrincipalError::Interrupted) => report.interrupted += 1,
            }
        }
        report.failed.sort_by(|a, b| a.arn.cmp(&b.arn));
        report.vanished.sort();
        if !report.failed.is_empty() {
            report.status = AccountStatus::Partial;
        } else if report.interrupted > 0 {
            report.status = AccountStatus::Interrupted;
        }
        report
    }

    /// An account's outcome as a run recorded it (a shared run's, whoever collected it). The
    /// listing's ARNs are not recorded: `listed` is empty.
    pub fn from_record(record: AccountRecord) -> Self {
        Self {
            failure: record
                .error_code
                .map(|code| Failure::new(code, record.error_message.unwrap_or_default())),
            id: record.account_id,
            name: record.account_name,
            status: record.status,
            listed: Vec::new(),
            collected: usize::try_from(record.principals_collected).unwrap_or(0),
            failed: record
                .failures
                .into_iter()
                .map(|failure| PrincipalFailure {
                    arn: failure.arn,
                    failure: Failure::new(failure.code, failure.message),
                })
                .collect(),
            vanished: record.vanished,
            interrupted: usize::try_from(record.principals_interrupted).unwrap_or(0),
            not_found: record.not_found,
            pruned: record.pruned,
            parts: record.parts,
            started_at: record.started_at,
            duration: Duration::from_millis(u64::try_from(record.duration_ms).unwrap_or(0)),
            worker: record.worker_pid.map(|pid| RunOwner {
                host: record.worker_host,
                pid: u32::try_from(pid).unwrap_or(0),
            }),
            attempts: record.attempts,
        }
    }

    pub fn record(&self) -> AccountRecord {
        AccountRecord {
            account_id: self.id.clone(),
            account_name: self.name.clone(),
            status: self.status,
            error_code: self.failure.as_ref().map(|f| f.code.clone()),
            error_message: self.failure.as_ref().map(|f| f.message.clone()),
            principals_listed: self.listed.len() as i64,
            principals_collected: self.collected as i64,
            principals_failed: self.failed.len() as i64,
            principals_vanished: self.vanished.len() as i64,
            principals_pruned: self.pruned.len() as i64,
            principals_interrupted: self.interrupted as i64,
            started_at: self.started_at.clone(),
            duration_ms: self.duration.as_millis() as i64,
            worker_host: self.worker.as_ref().and_then(|worker| worker.host.clone()),
            worker_pid: self.worker.as_ref().map(|worker| i64::from(worker.pid)),
            attempts: self.attempts,
            vanished: self.vanished.clone(),
            pruned: self.pruned.clone(),
            not_found: self.not_found.clone(),
            parts: self.parts.clone(),
            failures: self
                .failed
                .iter()
                .map(|f| RecordedFailure {
                    arn: f.arn.clone(),
                    code: f.failure.code.clone(),
                    message: f.failure.message.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub run_id: i64,
    /// In the order accounts finished.
    pub accounts: Vec<AccountReport>,
    /// The run was asked to stop before it was done.
    pub interrupted: bool,
    pub duration: Duration,
}

impl RunReport {
    fn count(&self, status: AccountStatus) -> usize {
        self.accounts.iter().filter(|a| a.status == status).count()
    }

    pub fn principals_collected(&self) -> usize {
        self.accounts.iter().map(|a| a.collected).sum()
    }

    pub fn principals_failed(&self) -> usize {
        self.accounts.iter().map(|a| a.failed.len()).sum()
    }

    pub fn principals_vanished(&self) -> usize {
        self.accounts.iter().map(|a| a.vanished.len()).sum()
    }

    pub fn principals_interrupted(&self) -> usize {
        self.accounts.iter().map(|a| a.interrupted).sum()
    }

    /// `-r` ARNs that their account's listing did not hold.
    pub fn arns_not_found(&self) -> impl Iterator<Item = &String> {
        self.accounts.iter().flat_map(|a| &a.not_found)
    }

    pub fn account(&self, id: &str) -> Option<&AccountReport> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// 0 when everything asked for was collected, 1 when the run was interrupted, 2 when some
    /// accounts or principals failed.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            return 1;
        }
        let clean = self.accounts.iter().all(|a| a.status == AccountStatus::Ok)
            && self.arns_not_found().next().is_none();
        if clean {
            0
        } else {
            2
        }
    }

    pub fn status(&self) -> RunStatus {
        if self.interrupted {
            RunStatus::Interrupted
        } else if self.exit_code() == 0 {
            RunStatus::Ok
        } else if self.count(AccountStatus::Failed) == self.accounts.len() {
            RunStatus::Failed
        } else {
            RunStatus::Partial
        }
    }

    pub fn totals(&self) -> RunTotals {
        RunTotals {
            accounts_total: self.accounts.len() as i64,
            accounts_ok: self.count(AccountStatus::Ok) as i64,
            accounts_partial: self.count(AccountStatus::Partial) as i64,
            accounts_failed: self.count(AccountStatus::Failed) as i64,
            accounts_interrupted: self.count(AccountStatus::Interrupted) as i64,
            principals_collected: self.principals_collected() as i64,
            principals_failed: self.principals_failed() as i64,
            principals_vanished: self.principals_vanished() as i64,
            principals_interrupted: self.principals_interrupted() as i64,
        }
    }

    /// The operator's summary: totals, then every failed account and principal with AWS's
    /// error code and message.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if self.interrupted {
            out.push_str(
                "interrupted: no new principal was started; what is below is what was done\n",
            );
        }
        let interrupted = self.principals_interrupted();
        let not_collected = if interrupted > 0 {
            format!(", {interrupted} not collected (interrupted)")
        } else {
            String::new()
        };
        out += &format!(
            "run {} finished in {:.1} s: {} accounts ({} ok, {} partial, {} failed); {} principals collected, {} failed, {} vanished{not_collected}\n",
            self.run_id,
            self.duration.as_secs_f64(),
            self.accounts.len(),
            self.count(AccountStatus::Ok),
            self.count(AccountStatus::Partial),
            self.count(AccountStatus::Failed),
            self.principals_collected(),
            self.principals_failed(),
            self.principals_vanished(),
        );
        let mut failed: Vec<&AccountReport> = self
            .accounts
            .iter()
            .filter(|a| a.status == AccountStatus::Failed)
            .collect();
        failed.sort_by(|a, b| a.id.cmp(&b.id));
        if !failed.is_empty() {
            out.push_str("failed accounts:\n");
            for account in failed {
                let name = account
                    .name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let failure = account
                    .failure
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                out.push_str(&format!("  {}{name}: {failure}\n", account.id));
            }
        }
        let mut principals: Vec<&PrincipalFailure> =
            self.accounts.iter().flat_map(|a| &a.failed).collect();
        principals.sort_by(|a, b| a.arn.cmp(&b.arn));
        if !principals.is_empty() {
            out.push_str("failed principals:\n");
            for principal in principals {
                out.push_str(&format!("  {}: {}\n", principal.arn, principal.failure));
            }
        }
        let mut not_found: Vec<&String> = self.arns_not_found().collect();
        not_found.sort();
        if !not_found.is_empty() {
            out.push_str("ARNs not found in their accounts' listings:\n");
            for arn in not_found {
                out.push_str(&format!("  {arn}\n"));
            }
        }
        out.push_str(&self.parts_summary());
        let mut pruned: Vec<&String> = self.accounts.iter().flat_map(|a| &a.pruned).collect();
        pruned.sort();
        if !pruned.is_empty() {
            out.push_str("pruned (no longer listed by AWS, deleted):\n");
            for arn in pruned {
                out.push_str(&format!("  {arn}\n"));
            }
        }
        out
    }
}

impl RunReport {
    /// The identity parts not collected (best effort: their accounts are not failed), counted
    /// per part, with each account's reason.
    fn parts_summary(&self) -> String {
        let mut failed: Vec<(&str, &str, &str, &str)> = self
            .accounts
            .iter()
            .flat_map(|account| {
                account
                    .parts
                    .iter()
                    .filter(|p| p.status == PartStatus::Failed)
                    .map(|part| {
                        (
                            part.part.as_str(),
                            account.id.as_str(),
                            part.code.as_deref().unwrap_or_default(),
                            part.message.as_deref().unwrap_or_default(),
                        )
                    })
            })
            .collect();
        if failed.is_empty() {
            return String::new();
        }
        failed.sort();
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for (part, ..) in &failed {
            *counts.entry(part).or_default() += 1;
        }
        let counted: Vec<String> = counts
            .iter()
            .map(|(part, n)| format!("{part} in {n}"))
            .collect();
        let mut out = format!(
            "identity details not collected (Access Advisor data unaffected): {} accounts\n",
            counted.join(", ")
        );
        for (part, account, code, message) in failed {
            out.push_str(&format!("  {account} {part}: {code}: {message}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: &str) -> Failure {
        Failure::new(code, format!("{code} happened"))
    }

    #[test]
    fn an_account_is_partial_when_any_principal_failed_and_vanishing_is_no_failure() {
        let listed: Vec<String> = ["r/c", "r/a", "r/b", "r/d"].map(String::from).to_vec();
        let outcomes = vec![
            (
                "r/c".to_owned(),
                Err(PrincipalError::Failed(failure("Throttling"))),
            ),
            (
                "r/d".to_owned(),
                Err(PrincipalError::Vanished(failure("NoSuchEntity"))),
            ),
            (
                "r/a".to_owned(),
                Err(PrincipalError::Failed(failure("FAILED"))),
            ),
            ("r/b".to_owned(), Ok(())),
        ];
        let report =
            AccountReport::from_outcomes("1", Some("one".into()), listed.clone(), outcomes);
        assert_eq!(report.status, AccountStatus::Partial);
        assert_eq!(report.collected, 1);
        assert_eq!(report.vanished, ["r/d"]);
        let failed: Vec<(&str, &str)> = report
            .failed
            .iter()
            .map(|f| (f.arn.as_str(), f.failure.code.as_str()))
            .collect();
        assert_eq!(failed, [("r/a", "FAILED"), ("r/c", "Throttling")]);
        assert_eq!(report.listed, listed);
        assert_eq!(report.failure, None);

        let stopped = AccountReport::from_outcomes(
            "1",
            None,
            Vec::new(),
            vec![
                ("r/a".to_owned(), Ok(())),
                ("r/b".to_owned(), Err(PrincipalError::Interrupted)),
            ],
        );
        assert_eq!(
            (stopped.status, stopped.collected, stopped.interrupted),
            (AccountStatus::Interrupted, 1, 1)
        );
        assert!(stopped.failed.is_empty());

        let vanished_only = AccountReport::from_outcomes(
            "1",
            None,
            Vec::new(),
            vec![(
                "r/x".to_owned(),
                Err(PrincipalError::Vanished(failure("NoSuchEntity"))),
            )],
        );
        assert_eq!(vanished_only.status, AccountStatus::Ok);
        assert_eq!(
            AccountReport::from_outcomes("1", None, Vec::new(), Vec::new()).status,
            AccountStatus::Ok
        );
    }

    #[test]
    fn a_run_is_ok_partial_or_failed_by_its_accounts() {
        let ok = AccountReport::from_outcomes("1", None, Vec::new(), Vec::new());
        let failed = AccountReport::failed_account(
            "2",
            None,
            failure("AccessDenied"),
            String::new(),
            Duration::ZERO,
        );
        let run = |mut accounts: Vec<AccountReport>, not_found: Vec<String>| {
            accounts[0].not_found = not_found;
            RunReport {
                run_id: 1,
                accounts,
                interrupted: false,
                duration: Duration::ZERO,
            }
        };
        assert_eq!(run(vec![ok.clone()], vec![]).status(), RunStatus::Ok);
        assert_eq!(
            run(vec![ok.clone()], vec!["x".into()]).status(),
            RunStatus::Partial
        );
        assert_eq!(
            run(vec![ok.clone(), failed.clone()], vec![]).status(),
            RunStatus::Partial
        );
        assert_eq!(
            run(vec![failed.clone()], vec![]).status(),
            RunStatus::Failed
        );
        assert_eq!(run(vec![failed], vec![]).exit_code(), 2);
        assert_eq!(run(vec![ok.clone()], vec![]).exit_code(), 0);
        let mut stopped = run(vec![ok], vec![]);
        stopped.interrupted = true;
        assert_eq!(
            (stopped.status(), stopped.exit_code()),
            (RunStatus::Interrupted, 1)
        );
    }
}
