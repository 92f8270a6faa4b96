//! Counters of what the simulator was asked and did: calls per account and operation,
//! throttles, requests in flight (per account and overall). Tests and benchmarks read them as
//! [`Stats`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of what the simulator was asked and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls per (account, operation), faults and throttled calls included.
    pub calls: BTreeMap<(String, String), u64>,
    /// Throttling errors answered, per account.
    pub throttles: BTreeMap<String, u64>,
    /// `ExpiredToken` errors answered (calls signed by a session that had run out), per
    /// account.
    pub expired_tokens: BTreeMap<String, u64>,
    /// Most requests in flight at once, per account (IAM calls acting in it).
    pub peak_in_flight: BTreeMap<String, u64>,
    /// Most requests in flight at once over all accounts.
    pub peak_in_flight_total: u64,
    /// Every request, in arrival order: how many were in flight when it arrived (itself included).
    pub in_flight_history: Vec<u32>,
    pub requests: u64,
    /// (service, region) of every SigV4 signature seen: where clients believed they were.
    pub signing_regions: std::collections::BTreeSet<(String, String)>,
}

impl Stats {
    /// Calls of `operation` in `account`.
    pub fn calls_of(&self, account: &str, operation: &str) -> u64 {
        self.calls
            .get(&(account.to_owned(), operation.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Calls of `operation` over all accounts.
    pub fn total_calls_of(&self, operation: &str) -> u64 {
        self.sum_calls(|_, op| op == operation)
    }

    /// Calls in `account`, all operations.
    pub fn calls_in(&self, account: &str) -> u64 {
        self.sum_calls(|acc, _| acc == account)
    }

    fn sum_calls(&self, counted: impl Fn(&str, &str) -> bool) -> u64 {
        self.calls
            .iter()
            .filter(|((account, operation), _)| counted(account, operation))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The simulator's counters as requests update them.
#[derive(Default)]
pub(crate) struct Counters {
    calls: Mutex<HashMap<(String, &'static str), u64>>,
    throttles: Mutex<HashMap<String, u64>>,
    expired_tokens: Mutex<HashMap<String, u64>>,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    history: Mutex<Vec<u32>>,
    requests: AtomicU64,
    signing_regions: Mutex<std::collections::BTreeSet<(String, String)>>,
}

fn add(counts: &Mutex<HashMap<String, u64>>, account: &str) {
    *counts
        .lock()
        .unwrap()
        .entry(account.to_owned())
        .or_default() += 1;
}

/// One account's counters.
#[derive(Default)]
pub(crate) struct AccountCounters {
    /// IAM calls that got past throttling, for the faults that hit every Nth call.
    pub iam_calls: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

impl AccountCounters {
    /// Counts a request in flight in this account until the guard drops.
    pub fn enter(&self) -> InFlight<'_> {
        InFlight::enter(&self.in_flight, &self.peak_in_flight).0
    }
}

impl Counters {
    /// Counts a request arriving, in flight until the guard drops.
    pub fn arrive(&self) -> InFlight<'_> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (guard, in_flight) = InFlight::enter(&self.in_flight, &self.peak_in_flight);
        self.history.lock().unwrap().push(in_flight as u32);
        guard
    }

    pub fn count(&self, account: &str, operation: &'static str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry((account.to_owned(), operation))
            .or_default() += 1;
    }

    /// A request signed for `service` in `region`. The set holds a handful of pairs: a scan
    /// finds one seen before without allocating, which is every request but the first few.
    pub fn signed_in(&self, service: &str, region: &str) {
        let mut seen = self.signing_regions.lock().unwrap();
        if !seen.iter().any(|(s, r)| s == service && r == region) {
            seen.insert((service.to_owned(), region.to_owned()));
        }
    }

    pub fn throttled(&self, account: &str) {
        add(&self.throttles, account);
    }

    pub fn expired(&self, account: &str) {
        add(&self.expired_tokens, account);
    }

    /// A snapshot, with the peaks of `accounts`.
    pub fn stats<'a>(
        &self,
        accounts: impl Iterator<Item = (&'a String, &'a AccountCounters)>,
    ) -> Stats {
        let calls = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|((account, op), n)| ((account.clone(), (*op).to_owned()), *n))
            .collect();
        let per_account = |counts: &Mutex<HashMap<String, u64>>| {
            counts
                .lock()
                .unwrap()
                .iter()
                .map(|(a, n)| (a.clone(), *n))
                .collect()
        };
        let peak_in_flight = accounts
            .map(|(id, counters)| (id.clone(), counters.peak_in_flight.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Stats {
            calls,
            throttles: per_account(&self.throttles),
            expired_tokens: per_account(&self.expired_tokens),
            peak_in_flight,
            peak_in_flight_total: self.peak_in_flight.load(Ordering::Relaxed),
            in_flight_history: self.history.lock().unwrap().clone(),
            requests: self.requests.load(Ordering::Relaxed),
            signing_regions: self.signing_regions.lock().unwrap().clone(),
        }
    }
}

/// Decrements an in-flight counter when a request ends, also when it unwinds.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    /// Counts one more request in flight, raising `peak` if needed; returns the new count.
    fn enter(counter: &'a AtomicU64, peak: &AtomicU64) -> (Self, u64) {
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        (Self(counter), now)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
