//! Each account's request pacing, the one brake on its IAM calls. A token bucket (GCRA) at
//! `UPDATER_ACCOUNT_RATE_LIMIT` with `UPDATER_ACCOUNT_BURST`, whose rate adapts to what AWS
//! allows the account: a throttled answer cuts the rate (once per episode: answers to requests
//! sent before the last cut do not cut again) and empties the burst; requests that had to wait
//! for their slot probe the rate back up, quickly to the rate AWS last throttled at, then past
//! it, never above the configured rate. Throttled calls are sent again on the pacer's next
//! slot, until the call has been throttled for the job timeout; the SDK's retry strategy
//! handles every other retryable error (its retries of throttling are turned off, so that no
//! attempt goes around the pacer). Unpaced accounts (a rate of 0) leave throttles to the SDK's
//! adaptive mode. Paced or not, each call is made in one of the run's turns on the wire
//! (`AwsContext::wire`).
//!
//! Why not the SDK's adaptive mode here: its client rate limiter, throttled while an account
//! starts, keeps the account far below AWS's limit (`aardvark demo`, whose three accounts AWS
//! limits to 4 requests/s, collected in 42.5 s with it and in 11.4 s with this pacer). Why not
//! `governor`: its quota is fixed once built.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::Semaphore;

use super::aws::Failure;
use super::calls::is_throttled;

/// What a throttled answer leaves of the rate.
const CUT: f64 = 0.7;

/// The slowest the pacer goes, in requests per second.
const SLOWEST: f64 = 0.1;

/// Paces one account's requests; unpaced when built with a rate of 0.
pub struct Pacer {
    /// `None` when unpaced.
    state: Option<Mutex<State>>,
    /// Requests waiting for a slot, first come first served.
    queue: tokio::sync::Mutex<()>,
    ceiling: f64,
    burst: u32,
    /// How long one call may keep being throttled before it fails.
    patience: Duration,
    /// The run's turns for a call on the wire, when it has them.
    wire: Option<Arc<Semaphore>>,
}

struct State {
    /// Requests per second now.
    rate: f64,
    /// When the bucket is empty again (GCRA's theoretical arrival time).
    empty_at: Instant,
    /// When the rate was last cut.
    cut_at: Option<Instant>,
    /// The rate AWS last throttled the account at.
    throttled_at: f64,
}

/// A reserved slot: when the request may go, and whether it had to wait for it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: Instant,
    waited: bool,
}

impl Pacer {
    pub fn new(per_second: f64, burst: u32, patience: Duration) -> Self {
        let paced = per_second > 0.0;
        Self {
            state: paced.then(|| {
                Mutex::new(State {
                    rate: per_second,
                    empty_at: Instant::now(),
                    cut_at: None,
                    throttled_at: per_second,
                })
            }),
            queue: tokio::sync::Mutex::new(()),
            ceiling: per_second,
            burst: burst.max(1),
            patience,
            wire: None,
        }
    }

    /// The same pacer, each call also taking one of `wire`'s turns while it is made.
    pub fn on_the_wire(mut self, wire: Arc<Semaphore>) -> Self {
        self.wire = Some(wire);
        self
    }

    /// Makes one call, in a turn on the wire. `request` is made only once the turn is taken,
    /// and boxed: the SDK's future of a call is about 10 kB, and an account holds one future
    /// per principal in flight; the call's state is then on the heap only while it is made.
    async fn call<Fut: Future>(&self, request: impl FnOnce() -> Fut) -> Fut::Output {
        let _turn = match &self.wire {
            Some(wire) => Some(wire.acquire().await.expect("the semaphore is never closed")),
            None => None,
        };
        Box::pin(request()).await
    }

    /// The rate the account is paced at now (requests per second; 0 when unpaced).
    pub fn rate(&self) -> f64 {
        self.state.as_ref().map_or(0.0, |state| lock(state).rate)
    }

    /// Reserves the next slot: requests go at `rate` a second, with up to `burst` at once
    /// after a quiet spell (fewer while the rate is cut: the burst shrinks with it).
    fn reserve(&self, now: Instant) -> Slot {
        let Some(state) = &self.state else {
            return Slot {
                at: now,
                waited: false,
            };
        };
        let mut state = lock(state);
        let (interval, tolerance) = self.spacing(&state);
        let at = state
            .empty_at
            .checked_sub(tolerance)
            .unwrap_or(now)
            .max(now);
        state.empty_at = state.empty_at.max(at) + interval;
        Slot {
            at,
            waited: at > now,
        }
    }

    /// Waits for the account's next slot. Requests take their turns first (a fair queue),
    /// and only the one whose turn it is reserves its slot: slots reserved ahead by every
    /// waiting request would keep the rate they were reserved at, and a pacer probing back up
    /// after a cut would gain nothing until the queue had drained.
    async fn wait_for_slot(&self) -> Slot {
        let (_turn, queued) = match self.queue.try_lock() {
            Ok(turn) => (turn, false),
            Err(_) => (self.queue.lock().await, true),
        };
        let mut slot = self.reserve(Instant::now());
        if slot.waited {
            tokio::time::sleep_until(slot.at.into()).await;
        }
        slot.waited |= queued;
        slot
    }

    /// AWS throttled a request sent at `sent`: cut the rate, unless it was already cut since
    /// the request left, and empty the burst (AWS's own bucket is empty).
    fn throttled(&self, sent: Instant) {
        let Some(state) = &self.state else {
            return;
        };
        let mut state = lock(state);
        if state.cut_at.is_some_and(|cut| cut >= sent) {
            return;
        }
        let now = Instant::now();
        state.throttled_at = state.rate;
        state.rate = (state.rate * CUT).max(SLOWEST.min(self.ceiling));
        state.cut_at = Some(now);
        // A full bucket's worth ahead: the next request waits one interval, and no burst
        // builds up again before a quiet spell.
        let (interval, tolerance) = self.spacing(&state);
        state.empty_at = state.empty_at.max(now + tolerance + interval);
    }

    /// The interval between requests at the current rate, and how far ahead of the bucket's
    /// emptying a request may go (the burst, shrunk with the rate).
    fn spacing(&self, state: &State) -> (Duration, Duration) {
        let interval = Duration::from_secs_f64(1.0 / state.rate);
        let burst =
            (f64::from(self.burst) * state.rate / self.ceiling).clamp(1.0, f64::from(self.burst));
        (interval, interval.mul_f64(burst - 1.0))
    }

    /// A request that waited for its slot was answered: the account took the rate, so probe
    /// above it. Per second of such requests: half the way back to the rate AWS last
    /// throttled at, then past it slowly at first and faster the longer AWS lets it (AWS's
    /// limit may have risen), plus a fiftieth of the configured rate; never above that.
    fn answered(&self, slot: Slot) {
        let Some(state) = &self.state else {
            return;
        };
        if !slot.waited {
            return;
        }
        let mut state = lock(state);
        if state.rate < self.ceiling {
            let towards = if state.rate < state.throttled_at {
                (state.throttled_at - state.rate) / 2.0
            } else {
                state.rate - state.throttled_at
            };
            let per_second = towards + self.ceiling / 50.0;
            state.rate = (state.rate + per_second / state.rate).min(self.ceiling);
        }
    }

    /// Sends a request on the account's next slot; a throttled answer slows the pacer and the
    /// request is sent again on a later slot, until it has been throttled for the pacer's
    /// patience (then the throttled answer is returned). Unpaced, the request is sent once
    /// (the SDK retries throttles then: [`AwsContext::iam_for`](super::aws::AwsContext::iam_for)).
    pub async fn send<T, E, F, Fut>(&self, mut request: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Throttling,
    {
        if self.state.is_none() {
            return self.call(&mut request).await;
        }
        let first = Instant::now();
        loop {
            let slot = self.wait_for_slot().await;
            let result = self.call(&mut request).await;
            match &result {
                Err(err) if err.is_throttling() => {
                    self.throttled(slot.at);
                    if first.elapsed() < self.patience {
                        continue;
                    }
                }
                Err(_) => {}
                Ok(_) => self.answered(slot),
            }
            return result;
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // The state is a few numbers, each update complete before it can panic.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether an error is AWS saying the caller was throttled.
pub trait Throttling {
    fn is_throttling(&self) -> bool;
}

impl<E: ProvideErrorMetadata> Throttling for SdkError<E, HttpResponse> {
    fn is_throttling(&self) -> bool {
        match self {
            SdkError::ServiceError(service) => {
                is_throttled(service.raw().status().as_u16(), service.err().code())
            }
            _ => false,
        }
    }
}

impl Throttling for Failure {
    fn is_throttling(&self) -> bool {
        // `HTTP429`: a 429 without a code (`Failure::from_sdk`).
        self.code == "HTTP429" || is_throttled(0, Some(&self.code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(pacer: &Pacer, now: Instant, n: usize) -> Vec<Duration> {
        (0..n)
            .map(|_| pacer.reserve(now).at.duration_since(now))
            .collect()
    }

    #[test]
    fn a_burst_goes_at_once_then_the_rate() {
        let pacer = Pacer::new(10.0, 3, Duration::from_secs(1));
        let now = Instant::now() + Duration::from_secs(1);
        let got = slots(&pacer, now, 5);
        assert_eq!(got[..3], [Duration::ZERO; 3]);
        assert_eq!(got[3], Duration::from_millis(100));
        assert_eq!(got[4], Duration::from_millis(200));
    }

    #[test]
    fn a_throttle_cuts_once_per_episode_and_requests_that_wait_probe_back_up() {
        let pacer = Pacer::new(10.0, 5, Duration::from_secs(1));
        let sent = Instant::now();
        pacer.throttled(sent);
        assert!((pacer.rate() - 7.0).abs() < 1e-9);
        // Sent before the cut: the same episode.
        pacer.throttled(sent);
        assert!((pacer.rate() - 7.0).abs() < 1e-9);
        pacer.throttled(Instant::now() + Duration::from_millis(1));
        assert!((pacer.rate() - 4.9).abs() < 1e-9);
        // A request that did not wait says nothing about the rate.
        pacer.answered(Slot {
            at: sent,
            waited: false,
        });
        assert!((pacer.rate() - 4.9).abs() < 1e-9);
        let waited = Slot {
            at: sent,
            waited: true,
        };
        // A second of waiting requests at about 5 a second: about half the way back to 7,
        // where AWS last throttled, and a fiftieth of the configured rate.
        for _ in 0..5 {
            pacer.answered(waited);
        }
        assert!((5.7..6.1).contains(&pacer.rate()), "{}", pacer.rate());
        // Past 7, slowly at first, then faster.
        let seconds_for = |pacer: &Pacer, from: f64, to: f64| {
            let mut answers = 0.0;
            while pacer.rate() < to {
                answers += 1.0;
                pacer.answered(waited);
                assert!(answers < 1e4, "the rate grows");
            }
            assert!(pacer.rate() >= from);
            answers / to
        };
        let near = seconds_for(&pacer, 5.7, 7.5);
        let far = seconds_for(&pacer, 7.5, 9.0);
        assert!(far < 2.0 * near, "{near} s, then {far} s");
        for _ in 0..1_000 {
            pacer.answered(waited);
        }
        assert_eq!(pacer.rate(), 10.0, "never above the configured rate");
    }

    #[test]
    fn a_throttle_empties_the_burst() {
        let pacer = Pacer::new(10.0, 10, Duration::from_secs(1));
        pacer.throttled(Instant::now());
        // 7 a second, a burst of 7, none of it left.
        let now = Instant::now();
        let got = slots(&pacer, now, 3);
        assert!(got[0] > Duration::ZERO, "{got:?}");
        assert!(got[1] > got[0] && got[2] > got[1], "{got:?}");
    }

    #[test]
    fn the_burst_shrinks_with_the_rate() {
        let pacer = Pacer::new(10.0, 10, Duration::from_secs(1));
        for _ in 0..2 {
            pacer.throttled(Instant::now() + Duration::from_secs(1));
        }
        // 4.9 a second: a burst of 4.
        let now = Instant::now() + Duration::from_secs(60);
        let got = slots(&pacer, now, 5);
        assert_eq!(got[..4], [Duration::ZERO; 4], "{got:?}");
        assert!(got[4] > Duration::ZERO, "{got:?}");
    }

    #[tokio::test]
    async fn unpaced_never_waits_nor_sends_again() {
        let pacer = Pacer::new(0.0, 5, Duration::from_secs(1));
        let now = Instant::now();
        assert_eq!(slots(&pacer, now, 100), vec![Duration::ZERO; 100]);
        pacer.throttled(now);
        assert_eq!(pacer.rate(), 0.0);
        let mut sent = 0;
        let got: Result<(), Failure> = pacer
            .send(|| {
                sent += 1;
                std::future::ready(Err(Failure::new("Throttling", "slow down")))
            })
            .await;
        assert!(got.is_err());
        assert_eq!(sent, 1, "the SDK retries throttles of unpaced accounts");
    }

    #[tokio::test]
    async fn throttled_calls_are_sent_again_until_the_patience_runs_out() {
        let pacer = Pacer::new(1_000.0, 1, Duration::from_secs(3_600));
        let mut answers = vec![
            Ok(3),
            Err(Failure::new("Throttling", "slow down")),
            Err(Failure::new("Throttling", "slow down")),
        ];
        let got = pacer
            .send(|| std::future::ready(answers.pop().unwrap()))
            .await;
        assert_eq!(got, Ok(3));
        assert!(pacer.rate() < 1_000.0);

        let impatient = Pacer::new(1_000.0, 1, Duration::ZERO);
        let mut sent = 0;
        let got: Result<(), Failure> = impatient
            .send(|| {
                sent += 1;
                std::future::ready(Err(Failure::new("Throttling", "slow down")))
            })
            .await;
        assert_eq!(got.unwrap_err().code, "Throttling");
        assert_eq!(sent, 1);

        let mut sent = 0;
        let got: Result<(), Failure> = pacer
            .send(|| {
                sent += 1;
                std::future::ready(Err(Failure::new("AccessDenied", "no")))
            })
            .await;
        assert_eq!(got.unwrap_err().code, "AccessDenied");
        assert_eq!(sent, 1, "other errors are not sent again");
    }

    #[tokio::test]
    async fn a_call_is_made_only_in_a_turn_on_the_wire() {
        let wire = Arc::new(Semaphore::new(1));
        let made = std::sync::atomic::AtomicBool::new(false);
        let held = wire.clone().try_acquire_owned().unwrap();
        for pacer in [
            Pacer::new(0.0, 1, Duration::ZERO),
            Pacer::new(10.0, 1, Duration::ZERO),
        ] {
            let pacer = pacer.on_the_wire(wire.clone());
            let mut call = Box::pin(pacer.send(|| {
                made.store(true, std::sync::atomic::Ordering::SeqCst);
                std::future::ready(Ok::<_, Failure>(()))
            }));
            assert!(futures::poll!(&mut call).is_pending());
            assert!(
                !made.load(std::sync::atomic::Ordering::SeqCst),
                "made before its turn"
            );
        }
        drop(held);
        let pacer = Pacer::new(10.0, 1, Duration::ZERO).on_the_wire(wire.clone());
        let got = pacer
            .send(|| {
                made.store(true, std::sync::atomic::Ordering::SeqCst);
                std::future::ready(Ok::<_, Failure>(()))
            })
            .await;
        assert_eq!(got, Ok(()));
        assert!(made.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(wire.available_permits(), 1, "the turn is given back");
    }
}
