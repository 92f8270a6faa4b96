//! Where a run's accounts come from and where their outcomes go: this process's own list
//! (`Work::Local`: SQLite, or `COLLECT_SHARED: false`), or a shared run's rows of work in
//! PostgreSQL (`Work::Shared`), claimed by every process that takes part, each account under
//! a lease that this process renews while it collects and checks before it writes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::accounts::TargetAccount;
use super::stop::Stop;
use crate::db::runs::AccountRecord;
use crate::db::work::{Claim, WorkItem, Worker};
use crate::db::{Database, DbError};

/// The longest a worker with nothing to claim waits before it looks again (leases of other
/// workers may expire sooner than that: it looks a quarter of a lease apart at most).
const LOOK_AGAIN_AT_MOST: Duration = Duration::from_secs(2);

/// An account this process collects, and the claim it holds on it in a shared run.
pub(super) struct Claimed {
    pub target: TargetAccount,
    pub claim: Option<Claim>,
}

/// What became of an account's outcome.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recorded {
    Yes,
    /// Its lease expired: another worker has (or will have) the account, and this worker's
    /// outcome is dropped.
    LeaseLost,
    /// Given back for another worker to collect (this one was asked to stop).
    Released,
}

/// Whether a worker with nothing in flight goes on.
pub(super) enum Next {
    /// There is work to claim (again).
    Claim,
    /// Nothing is left for this worker: every account is recorded, the run ended, or it
    /// was asked to stop.
    Done,
}

pub(super) enum Work {
    Local(Mutex<VecDeque<TargetAccount>>),
    Shared(Shared),
}

/// This process's part in a shared run.
pub(super) struct Shared {
    db: Database,
    run_id: i64,
    worker: Worker,
    lease: Duration,
    held: Mutex<HashMap<String, Held>>,
    /// When the last renewal that succeeded was sent.
    renewed: Mutex<Instant>,
}

struct Held {
    attempt: i64,
    claimed: Instant,
    lost: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here only reads or sets fields: nothing can panic halfway.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Work {
    pub(super) fn local(targets: Vec<TargetAccount>) -> Self {
        Self::Local(Mutex::new(targets.into()))
    }

    pub(super) fn shared(db: Database, run_id: i64, worker: Worker, lease: Duration) -> Self {
        Self::Shared(Shared {
            db,
            run_id,
            worker,
            lease,
            held: Mutex::default(),
            renewed: Mutex::new(Instant::now()),
        })
    }

    pub(super) fn as_shared(&self) -> Option<&Shared> {
        match self {
            Self::Local(_) => None,
            Self::Shared(shared) => Some(shared),
        }
    }

    /// Up to `most` accounts to collect next.
    pub(super) async fn claim(&self, most: usize) -> Result<Vec<Claimed>, DbError> {
        match self {
            Self::Local(targets) => {
                let mut targets = lock(targets);
                let most = most.min(targets.len());
                Ok(targets
                    .drain(..most)
                    .map(|target| Claimed {
                        target,
                        claim: None,
                    })
                    .collect())
            }
            Self::Shared(shared) => shared.claim(most).await,
        }
    }

    /// Whether this process lost its claim on `account` (never, on its own work).
    pub(super) fn is_lost(&self, account: &str) -> bool {
        match self {
            Self::Local(_) => false,
            Self::Shared(shared) => lock(&shared.held)
                .get(account)
                .is_some_and(|held| held.lost),
        }
    }

    /// Makes sure, before a write, that the leases are known to be live: renewed now when the
    /// last renewal is older than half a lease (the process may have stalled since).
    pub(super) async fn before_writing(&self) {
        if let Self::Shared(shared) = self {
            if lock(&shared.renewed).elapsed() > shared.lease / 2 {
                shared.renew().await;
            }
        }
    }

    /// Records `claimed`'s outcome: in this process's run, or, in a shared run, only while its
    /// lease is live. `give_back` hands an unfinished account to the other workers instead.
    pub(super) async fn record(
        &self,
        db: &Database,
        run_id: i64,
        claimed: &Claimed,
        record: &AccountRecord,
        give_back: bool,
    ) -> Result<Recorded, DbError> {
        let Some(claim) = &claimed.claim else {
            db.record_account(run_id, record).await?;
            return Ok(Recorded::Yes);
        };
        let Self::Shared(shared) = self else {
            unreachable!("claims come only from shared work")
        };
        let recorded = if give_back {
            db.release_claims(run_id, std::slice::from_ref(claim))
                .await?;
            Recorded::Released
        } else if db.record_claimed_account(run_id, claim, record).await? {
            Recorded::Yes
        } else {
            Recorded::LeaseLost
        };
        lock(&shared.held).remove(&claim.item.account_id);
        Ok(recorded)
    }

    /// With nothing in flight: whether there is more to claim, after waiting (at most a
    /// quarter of a lease) when what is left is held by other workers.
    pub(super) async fn next(&self, stop: &Stop) -> Next {
        let Self::Shared(shared) = self else {
            return Next::Done;
        };
        if stop.is_set() {
            return Next::Done;
        }
        match shared.db.work_left(shared.run_id, &shared.worker).await {
            Ok(left) if !left.running => return Next::Done,
            Ok(left) if left.claimable > 0 => return Next::Claim,
            Ok(left) if left.held_elsewhere == 0 => return Next::Done,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(run_id = shared.run_id, error = %err, "cannot read what is left of the shared run; trying again")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(shared.look_again()) => Next::Claim,
            () = stop.wait() => Next::Done,
        }
    }

    /// Resolves when a worker with room should look for work again (never, on its own work:
    /// its list only shrinks).
    pub(super) async fn look_again(&self) {
        match self {
            Self::Local(_) => std::future::pending().await,
            Self::Shared(shared) => tokio::time::sleep(shared.look_again()).await,
        }
    }
}

impl Shared {
    pub(super) fn worker(&self) -> &Worker {
        &self.worker
    }

    fn look_again(&self) -> Duration {
        (self.lease / 4).min(LOOK_AGAIN_AT_MOST)
    }

    async fn claim(&self, most: usize) -> Result<Vec<Claimed>, DbError> {
        let claims = self
            .db
            .claim_work(self.run_id, &self.worker, most, self.lease)
            .await?;
        let now = Instant::now();
        let mut held = lock(&self.held);
        Ok(claims
            .into_iter()
            .map(|claim| {
                held.insert(
                    claim.item.account_id.clone(),
                    Held {
                        attempt: claim.attempt,
                        claimed: now,
                        lost: false,
                    },
                );
                let WorkItem {
                    account_id,
                    name,
                    aliases,
                } = claim.item.clone();
                Claimed {
                    target: TargetAccount {
                        id: account_id,
                        name,
                        aliases,
                    },
                    claim: Some(claim),
                }
            })
            .collect())
    }

    /// Renews every lease this process holds; a claim the database no longer renews (its
    /// lease expired, and another worker may hold it) is lost. When the database cannot be
    /// reached for longer than a lease, every claim is lost: others may have taken them.
    pub(super) async fn renew(&self) {
        let sent = Instant::now();
        match self
            .db
            .renew_leases(self.run_id, &self.worker, self.lease)
            .await
        {
            Ok(renewed) => {
                let renewed: HashSet<(String, i64)> = renewed.into_iter().collect();
                let mut held = lock(&self.held);
                for (account, claim) in held.iter_mut() {
                    let live = renewed.contains(&(account.clone(), claim.attempt));
                    // A claim made while the renewal was on its way is not in its answer.
                    if !live && claim.claimed < sent && !claim.lost {
                        claim.lost = true;
                        tracing::warn!(
                            account = %account,
                            attempt = claim.attempt,
                            "this worker's lease on the account expired: another worker collects it; this one stops"
                        );
                    }
                }
                *lock(&self.renewed) = sent;
            }
            Err(err) => {
                tracing::warn!(run_id = self.run_id, error = %err, "cannot renew this worker's leases; trying again");
                if lock(&self.renewed).elapsed() > self.lease {
                    for claim in lock(&self.held).values_mut() {
                        claim.lost = true;
                    }
                }
            }
        }
    }

    /// Renews the leases a third of a lease apart, until aborted.
    pub(super) async fn keep_leases(&self) {
        let mut beats = tokio::time::interval(self.lease / 3);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beats.tick().await;
        loop {
            beats.tick().await;
            self.renew().await;
        }
    }
}
