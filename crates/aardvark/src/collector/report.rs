//! What a run did: per-account outcomes, failed principals, ARNs not found; the terminal
//! summary; and the run's exit code.

use std::time::Duration;

use super::aws::Failure;
use crate::db::runs::{AccountRecord, RunTotals};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// Every listed principal collected (or vanished).
    Ok,
    /// Listed, but some principals failed.
    Partial,
    /// Nothing collected: AssumeRole, a listing or the account itself failed.
    Failed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Ok => "ok",
            AccountStatus::Partial => "partial",
            AccountStatus::Failed => "failed",
        }
    }
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
    pub pruned: usize,
    pub started_at: String,
    pub duration: Duration,
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
            pruned: 0,
            started_at,
            duration,
        }
    }

    pub fn record(&self) -> AccountRecord {
        AccountRecord {
            account_id: self.id.clone(),
            account_name: self.name.clone(),
            status: self.status.as_str().into(),
            error_code: self.failure.as_ref().map(|f| f.code.clone()),
            error_message: self.failure.as_ref().map(|f| f.message.clone()),
            principals_listed: self.listed.len() as i64,
            principals_collected: self.collected as i64,
            principals_failed: self.failed.len() as i64,
            principals_vanished: self.vanished.len() as i64,
            principals_pruned: self.pruned as i64,
            started_at: self.started_at.clone(),
            duration_ms: self.duration.as_millis() as i64,
            failures: self
                .failed
                .iter()
                .map(|f| {
                    (
                        f.arn.clone(),
                        f.failure.code.clone(),
                        f.failure.message.clone(),
                    )
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
    /// `-r` ARNs that no collected account listed.
    pub arns_not_found: Vec<String>,
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

    pub fn account(&self, id: &str) -> Option<&AccountReport> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// 0 when everything asked for was collected, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        let clean = self.accounts.iter().all(|a| a.status == AccountStatus::Ok)
            && self.arns_not_found.is_empty();
        if clean {
            0
        } else {
            2
        }
    }

    pub fn totals(&self) -> RunTotals {
        let status = if self.exit_code() == 0 {
            "ok"
        } else if self.count(AccountStatus::Failed) == self.accounts.len() {
            "failed"
        } else {
            "partial"
        };
        RunTotals {
            status: status.into(),
            accounts_total: self.accounts.len() as i64,
            accounts_ok: self.count(AccountStatus::Ok) as i64,
            accounts_partial: self.count(AccountStatus::Partial) as i64,
            accounts_failed: self.count(AccountStatus::Failed) as i64,
            principals_collected: self.principals_collected() as i64,
            principals_failed: self.principals_failed() as i64,
            principals_vanished: self.principals_vanished() as i64,
        }
    }

    /// The operator's summary: totals, then every failed account and principal with AWS's
    /// error code and message.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "run {} finished in {:.1} s: {} accounts ({} ok, {} partial, {} failed); {} principals collected, {} failed, {} vanished\n",
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
        if !self.arns_not_found.is_empty() {
            out.push_str("ARNs not found in their accounts' listings:\n");
            for arn in &self.arns_not_found {
                out.push_str(&format!("  {arn}\n"));
            }
        }
        out
    }
}
