//! `aardvark accounts forget`: removes accounts aardvark should no longer show (a mistyped
//! `-a`, a closed account) from the run records that `/api/1/accounts`, `/metrics` and the
//! dashboard read. Stored principals are data: they go only when asked for by name.

use std::process::ExitCode;

use anyhow::bail;

use crate::arn::AccountId;
use crate::db::Database;

#[derive(Debug, clap::Subcommand)]
pub enum AccountsCommand {
    /// Forget accounts: their run records, and with --delete-principals their stored
    /// principals. An account with principals stored is refused without it.
    Forget {
        /// 12-digit account ids.
        #[arg(required = true, value_name = "ACCOUNT_ID", value_parser = super::report::account_id)]
        ids: Vec<AccountId>,
        /// Delete the accounts' stored principals and their Access Advisor data too.
        #[arg(long)]
        delete_principals: bool,
    },
}

pub async fn run(db: &Database, command: &AccountsCommand) -> anyhow::Result<ExitCode> {
    let AccountsCommand::Forget {
        ids,
        delete_principals,
    } = command;
    // Every account checked before any is changed, so that a refusal changes nothing.
    for id in ids {
        match db.account_footprint(id).await? {
            (0, 0) => bail!("account {id} is unknown here: it has no run records and no principals stored (nothing was forgotten)"),
            (_, principals) if principals > 0 && !delete_principals => bail!(
                "account {id} has {principals} principals stored; pass --delete-principals to delete them too (nothing was forgotten)"
            ),
            _ => {}
        }
    }
    for id in ids {
        let records = db.forget_account_records(id).await?;
        let (principals, findings) = if *delete_principals {
            let principals = db.prune_account(id, &Default::default()).await?.len();
            (
                principals,
                db.forget_identity_and_findings(id.as_str()).await?,
            )
        } else {
            (0, 0)
        };
        println!("forgot account {id}: {records} run records, {principals} principals and {findings} findings deleted");
    }
    Ok(ExitCode::SUCCESS)
}
