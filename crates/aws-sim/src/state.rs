//! What every handler shares: the scenario's accounts with their run-time state (token
//! buckets, counters), the jobs generated so far, the simulated clock, id and key issuance,
//! and who a request's credentials stand for. Below the services and the faults.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::policy_book::PolicyBook;
use crate::scenario::{ExpectedService, RateLimit, ResolvedAccount, Scenario, ScenarioError};
use crate::stats::{AccountCounters, Counters, Stats};

/// An account and its run-time state.
pub(crate) struct AccountState {
    pub account: ResolvedAccount,
    /// Principal index by ARN.
    pub by_arn: HashMap<String, usize>,
    /// The throttling fault's token bucket.
    pub bucket: Option<Mutex<TokenBucket>>,
    pub counters: AccountCounters,
    /// The credential report's life and the identity calls made so far (for the faults that
    /// hit the first N).
    pub report: Mutex<ReportState>,
    /// The account's policies, as IAM's write calls leave them.
    pub policies: Mutex<PolicyBook>,
}

/// An account's credential report: generations refused and answered `STARTED` so far,
/// reads so far, and when the report was built (simulated epoch milliseconds).
#[derive(Debug, Default)]
pub(crate) struct ReportState {
    pub refused: u32,
    pub started: u32,
    pub get_calls: u32,
    pub generated_ms: Option<i64>,
}

/// An Access Advisor job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub account: String,
    pub principal: usize,
    pub action_level: bool,
    pub created_ms: i64,
    pub polls: u32,
}

/// A token bucket of one account: `burst` tokens, refilled at the account's rate.
pub(crate) struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// Takes a token if one is there, after refilling for the time since the last call.
    pub fn take(&mut self, limit: RateLimit) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.updated).as_secs_f64() * limit.per_second;
        self.tokens = (self.tokens + refill).min(f64::from(limit.burst));
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Everything the handlers share.
pub(crate) struct SimState {
    pub scenario: Scenario,
    pub accounts: HashMap<String, AccountState>,
    /// Account ids in scenario order.
    pub order: Vec<String>,
    pub jobs: Mutex<HashMap<String, Job>>,
    /// When each session `AssumeRole` issued expires, by access key.
    sessions: Mutex<HashMap<String, Instant>>,
    next_id: AtomicU64,
    next_key: AtomicU64,
    pub counters: Counters,
    expected: BTreeMap<String, Vec<ExpectedService>>,
    started: Instant,
}

impl SimState {
    pub fn new(scenario: Scenario) -> Result<Self, ScenarioError> {
        let world = scenario.world()?;
        let expected = scenario.expected()?;
        let order = world.iter().map(|a| a.id.clone()).collect();
        let accounts = world
            .into_iter()
            .map(|account| {
                let by_arn = account
                    .principals
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.arn.clone(), i))
                    .collect();
                let bucket = account.faults.rate_limit.map(|limit| {
                    Mutex::new(TokenBucket {
                        tokens: f64::from(limit.burst),
                        updated: Instant::now(),
                    })
                });
                let policies = Mutex::new(PolicyBook::new(&account.principals));
                let state = AccountState {
                    policies,
                    account,
                    by_arn,
                    bucket,
                    counters: AccountCounters::default(),
                    report: Mutex::new(ReportState::default()),
                };
                (state.account.id.clone(), state)
            })
            .collect();
        Ok(Self {
            scenario,
            accounts,
            order,
            jobs: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_key: AtomicU64::new(1),
            counters: Counters::default(),
            expected,
            started: Instant::now(),
        })
    }

    /// A fresh request or job id in AWS's UUID shape.
    pub fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.scenario.seed;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            h as u16,
            n as u16,
            n
        )
    }

    /// Records a session issued for `lifetime`.
    pub fn issue_session(&self, access_key: &str, lifetime: Duration) {
        self.sessions
            .lock()
            .unwrap()
            .insert(access_key.to_owned(), Instant::now() + lifetime);
    }

    /// Whether the session of `access_key` has run out (keys never issued have not).
    pub fn session_expired(&self, access_key: &str) -> bool {
        self.sessions
            .lock()
            .unwrap()
            .get(access_key)
            .is_some_and(|expires| Instant::now() >= *expires)
    }

    /// A number for the next issued access key.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Milliseconds of the simulated clock: the scenario's reference time plus time since start.
    pub fn now_ms(&self) -> i64 {
        self.scenario.reference_time_ms + self.started.elapsed().as_millis() as i64
    }

    pub fn count(&self, account: &str, operation: &'static str) {
        self.counters.count(account, operation);
    }

    pub fn stats(&self) -> Stats {
        self.counters.stats(
            self.accounts
                .iter()
                .map(|(id, state)| (id, &state.counters)),
        )
    }

    /// The account a caller acts in: the hub's for its own credentials.
    pub fn caller_account<'a>(&'a self, caller: &'a Caller) -> &'a str {
        match caller {
            Caller::Hub { .. } => &self.scenario.hub_account,
            Caller::Assumed { account, .. } => account,
        }
    }

    /// What a correct collector must have stored (see [`Scenario::expected`]).
    pub fn expected(&self) -> &BTreeMap<String, Vec<ExpectedService>> {
        &self.expected
    }
}
/// The identity a request's credentials stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The base credentials: the hub account.
    Hub { access_key: String },
    /// Credentials `AssumeRole` issued for an account.
    Assumed { account: String, access_key: String },
}

/// Access keys `AssumeRole` issues: `ASIA`, the account id, four hex digits.
pub(crate) fn issued_key(account: &str, n: u64) -> String {
    format!("ASIA{account}{:04X}", n & 0xFFFF)
}
