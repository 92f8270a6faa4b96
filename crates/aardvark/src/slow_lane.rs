//! The slow lane: threads for the CPU-heavy part of costly requests (compiling a pattern,
//! matching it against every ARN), at the lowest priority of the normal scheduling class
//! (nice 19), so that the OS runs every other thread first. Cheap requests keep their latency
//! while costly ones run, and costly ones still use every core that nothing else wants. Never
//! an async worker: a long match there would stall every request that worker holds.
//! (Linux's `SCHED_IDLE` was measured and left out: under it the cheap requests' p99 grew
//! sixfold on this project's machine, against none with nice 19; BENCHMARKS.md.)

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The lane's queue, its threads started on first use (one per core).
fn lane() -> &'static Mutex<Sender<Job>> {
    static LANE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    LANE.get_or_init(|| {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for index in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("slow-lane-{index}"))
                .spawn(move || work(&receiver))
                .expect("a thread for the slow lane");
        }
        Mutex::new(sender)
    })
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    lower_this_threads_priority();
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let job = jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

fn lower_this_threads_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let lowest = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    let set = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        lowest,
    );
    if let Err(err) = set {
        tracing::warn!(error = ?err, "cannot lower the slow lane's priority: costly requests compete with cheap ones");
    }
}

/// Runs `work` in the slow lane and waits for its result (a panic in it is raised here).
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = done.send(outcome);
    });
    lane()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send(job)
        .expect("the slow lane's threads never stop");
    match result.await.expect("a job always answers") {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_on_a_thread_of_the_lowest_priority() {
        let (name, stat) = super::run(|| {
            let name = std::thread::current().name().map(str::to_owned);
            (name, std::fs::read_to_string("/proc/thread-self/stat").ok())
        })
        .await;
        assert!(name.is_some_and(|name| name.starts_with("slow-lane-")));
        if let Some(stat) = stat {
            // The fields after the command's closing parenthesis; nice is the 19th field.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, rest)| rest)
                .split_whitespace()
                .collect();
            assert_eq!(fields.get(16), Some(&"19"), "{stat}");
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_lane_is_raised_to_the_caller_and_the_lane_goes_on() {
        let caught = tokio::spawn(super::run(|| -> u8 { panic!("in the lane") })).await;
        assert!(caught.is_err_and(|err| err.is_panic()));
        assert_eq!(super::run(|| 7).await, 7);
    }
}
