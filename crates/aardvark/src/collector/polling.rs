//! When to poll an account's Access Advisor jobs. Every poll spends the account's request
//! budget, so a poll should find its job done. AWS's jobs complete some time after they are
//! generated; the simulator's also after a number of polls. An account's jobs take about as
//! long as each other, so the account learns it: its first job (the scout) polls with backoff
//! from `UPDATER_POLL_INTERVAL_MS`, the others wait for what the scout learnt and first poll
//! that long after they were generated, then back off the same way. Each job done refines the
//! estimate.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// How to wait for jobs.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// The first interval of a backoff; doubles up to `max_interval`.
    pub first_interval: Duration,
    pub max_interval: Duration,
    /// How long a job may take.
    pub deadline: Duration,
}

/// What an account has learnt of its jobs.
#[derive(Debug, Default)]
pub(crate) struct JobClock {
    state: Mutex<ClockState>,
    learnt: Notify,
}

#[derive(Debug, Default)]
struct ClockState {
    /// How long after its generation a job is first polled.
    estimate: Option<Duration>,
    /// A job is finding out.
    scouting: bool,
    /// How long a job takes from its generation to its last page, the longest of late (a
    /// high-water mark that decays by a tenth a job): what a session must still live for a job
    /// to be generated on it.
    job_time: Option<Duration>,
}

/// The scout's claim; given up (and another job made scout) if it ends without learning.
pub(crate) struct Scout<'a>(Option<&'a JobClock>);

impl Drop for Scout<'_> {
    fn drop(&mut self) {
        if let Some(clock) = self.0 {
            let mut state = clock.state.lock().unwrap();
            if state.estimate.is_none() {
                state.scouting = false;
                drop(state);
                clock.learnt.notify_waiters();
            }
        }
    }
}

impl JobClock {
    /// How long after its generation a job's first poll should come, and the scout's claim
    /// if this job is the one finding out. Waits for the scout, at most `max_interval`.
    pub async fn first_poll(&self, polling: Polling) -> (Duration, Scout<'_>) {
        let waited = tokio::time::sleep(polling.max_interval);
        tokio::pin!(waited);
        loop {
            let notified = self.learnt.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state.lock().unwrap();
                if let Some(estimate) = state.estimate {
                    return (estimate, Scout(None));
                }
                if !state.scouting {
                    state.scouting = true;
                    return (polling.first_interval, Scout(Some(self)));
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = &mut waited => return (polling.first_interval, Scout(None)),
            }
        }
    }

    /// A job was found done by a poll sent `done_at` after its generation. `running` is when
    /// the poll before it was sent, if one found it still running, and `step` the backoff
    /// between the two. The job finished somewhere in between: the estimate moves a quarter of
    /// the way towards the middle of that step (the time the poll waited for the account's
    /// request budget is left out, so that a busy account does not learn to poll later and
    /// later), or towards just under `done_at` when the first poll found it done, so that jobs
    /// that became faster are noticed.
    pub fn done(&self, done_at: Duration, running: Option<Duration>, step: Duration) {
        let target = match running {
            Some(running) => running + step.min(done_at.saturating_sub(running)) / 2,
            None => done_at.mul_f64(0.95),
        };
        let mut state = self.state.lock().unwrap();
        state.estimate = Some(match state.estimate {
            None => target,
            Some(estimate) => estimate.mul_f64(0.75) + target.mul_f64(0.25),
        });
        drop(state);
        self.learnt.notify_waiters();
    }
}

impl JobClock {
    /// A job took `took` from its generation to its last page.
    pub fn job_took(&self, took: Duration) {
        let mut state = self.state.lock().unwrap();
        state.job_time = Some(match state.job_time {
            Some(longest) => took.max(longest.mul_f64(0.9)),
            None => took,
        });
    }

    /// How long a session must still live for a job to be generated on it: the jobs' time
    /// with half again as margin, and a backoff step (before any job is done, one step).
    pub fn session_needed(&self, polling: Polling) -> Duration {
        let job_time = self.state.lock().unwrap().job_time.unwrap_or_default();
        job_time.mul_f64(1.5) + polling.max_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLLING: Polling = Polling {
        first_interval: Duration::from_millis(250),
        max_interval: Duration::from_secs(5),
        deadline: Duration::from_secs(300),
    };

    #[tokio::test]
    async fn the_first_job_scouts_and_the_others_wait_for_what_it_learns() {
        let clock = JobClock::default();
        let (first, scout) = clock.first_poll(POLLING).await;
        assert_eq!(first, POLLING.first_interval);
        assert!(scout.0.is_some());
        let waiting = clock.first_poll(POLLING);
        tokio::pin!(waiting);
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "a second job waits for the scout"
        );
        clock.done(
            Duration::from_secs(2),
            Some(Duration::from_secs(1)),
            Duration::from_secs(1),
        );
        drop(scout);
        let (learnt, not_scout) = waiting.await;
        assert_eq!(learnt, Duration::from_millis(1500));
        assert!(not_scout.0.is_none());
    }

    #[tokio::test]
    async fn a_scout_that_learns_nothing_hands_over() {
        let clock = JobClock::default();
        let (_, scout) = clock.first_poll(POLLING).await;
        let next = clock.first_poll(POLLING);
        tokio::pin!(next);
        assert!(futures::poll!(next.as_mut()).is_pending());
        drop(scout);
        let (first, scout) = next.await;
        assert_eq!(first, POLLING.first_interval);
        assert!(scout.0.is_some(), "the next job scouts");
    }

    #[test]
    fn sessions_must_outlive_the_longest_recent_job() {
        let clock = JobClock::default();
        assert_eq!(clock.session_needed(POLLING), POLLING.max_interval);
        clock.job_took(Duration::from_secs(4));
        assert_eq!(
            clock.session_needed(POLLING),
            Duration::from_secs(6) + POLLING.max_interval
        );
        // A shorter job lowers the mark by a tenth, not to itself.
        clock.job_took(Duration::from_secs(1));
        assert_eq!(
            clock.session_needed(POLLING),
            Duration::from_secs(4).mul_f64(0.9).mul_f64(1.5) + POLLING.max_interval
        );
        clock.job_took(Duration::from_secs(10));
        assert_eq!(
            clock.session_needed(POLLING),
            Duration::from_secs(15) + POLLING.max_interval
        );
    }

    #[test]
    fn the_estimate_follows_the_jobs() {
        let clock = JobClock::default();
        let estimate = |clock: &JobClock| clock.state.lock().unwrap().estimate.unwrap();
        let ms = Duration::from_millis;
        clock.done(ms(2000), None, Duration::ZERO);
        assert_eq!(estimate(&clock), ms(1900));
        // Found running at 1.9 s, done at 2.1 s after a step of 0.2 s: a quarter of the way
        // to 2.0 s.
        clock.done(ms(2100), Some(ms(1900)), ms(200));
        assert_eq!(estimate(&clock), ms(1925));
        // The same, but the second poll waited 3 s for the account's budget: the wait is not
        // the job's.
        clock.done(ms(5100), Some(ms(1900)), ms(200));
        assert_eq!(estimate(&clock), ms(1943) + Duration::from_micros(750));
    }
}
