//! Bounds on what one request can make the server do, so that costly requests queue behind
//! each other instead of slowing everyone:
//! - `regex` patterns: at most [`PATTERN_MAX_BYTES`], compiled within a size limit far below
//!   the regex crate's default, in the slow lane ([`crate::slow_lane`], never an async worker),
//!   and kept compiled for the next request that sends the same pattern;
//! - costly queries (a regex, `combine`, a count over [`LARGE_COUNT`]) run at most
//!   `COSTLY_QUERIES` at once; the others wait their turn, and past [`WAITING_PER_PERMIT`]
//!   waiting per permit they are answered 503 at once.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use lru::LruCache;
use regex::Regex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// The longest `regex` accepted: ARN patterns are far shorter.
pub const PATTERN_MAX_BYTES: usize = 1024;
/// The most a compiled pattern may take (the regex crate's default is 10 MiB).
const COMPILED_MAX_BYTES: usize = 512 * 1024;
/// The most a pattern's lazy DFA may cache per search (the crate's default is 2 MiB).
const LAZY_DFA_MAX_BYTES: usize = 512 * 1024;
/// How many compiled patterns are kept.
const CACHED_PATTERNS: usize = 64;
/// Counts above this make a query costly.
pub const LARGE_COUNT: i64 = 1000;
/// How many costly queries may wait for each permit before more are turned away.
const WAITING_PER_PERMIT: usize = 32;

/// A pattern compiled, or why it cannot be (kept alike, so a bad pattern sent again costs
/// nothing either).
type Compiled = Result<Regex, String>;

/// The bounds of one server.
pub struct Costly {
    patterns: Mutex<LruCache<String, Compiled>>,
    permits: Arc<Semaphore>,
    at_once: usize,
    waiting: AtomicUsize,
}

impl std::fmt::Debug for Costly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Costly({} at once)", self.at_once)
    }
}

/// A costly query's turn; the next one starts when it is dropped.
pub struct Turn(#[allow(dead_code)] OwnedSemaphorePermit);

impl Costly {
    /// Bounds with `at_once` costly queries at once (0: half the cores, at least one).
    pub fn new(at_once: usize) -> Self {
        let at_once = match at_once {
            0 => std::thread::available_parallelism()
                .map_or(1, |cores| cores.get() / 2)
                .max(1),
            n => n,
        };
        Self {
            patterns: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHED_PATTERNS).expect("not zero"),
            )),
            permits: Arc::new(Semaphore::new(at_once)),
            at_once,
            waiting: AtomicUsize::new(0),
        }
    }

    /// `pattern` compiled for matching at the start of an ARN (like Python's `re.match`), or a
    /// 400 that says why it cannot be.
    pub async fn pattern(&self, pattern: &str) -> Result<Regex, ApiError> {
        if pattern.len() > PATTERN_MAX_BYTES {
            return Err(ApiError::bad_request(format!(
                "invalid value for 'regex': the pattern is {} bytes long; at most {PATTERN_MAX_BYTES} are accepted",
                pattern.len()
            )));
        }
        let cached = self.cache().get(pattern).cloned();
        let compiled = match cached {
            Some(compiled) => compiled,
            None => {
                let owned = pattern.to_owned();
                let compiled = crate::slow_lane::run(move || compile(&owned)).await;
                self.cache().put(pattern.to_owned(), compiled.clone());
                compiled
            }
        };
        compiled.map_err(|reason| {
            ApiError::bad_request(format!(
                "invalid value for 'regex': {} is not a supported regular expression: {reason}",
                super::quoted(pattern)
            ))
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, Compiled>> {
        // A panic while holding the lock leaves a cache that is still consistent.
        self.patterns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a costly query's turn; a 503 at once when too many already wait.
    pub async fn turn(&self) -> Result<Turn, Busy> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(Turn(permit));
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = LeaveQueue(&self.waiting);
        if waiting >= self.at_once * WAITING_PER_PERMIT {
            return Err(Busy);
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Ok(Turn(permit))
    }
}

struct LeaveQueue<'a>(&'a AtomicUsize);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Too many costly queries wait already.
#[derive(Debug)]
pub struct Busy;

impl From<Busy> for ApiError {
    fn from(_: Busy) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "too many costly queries (regex, combine, large counts) are waiting; try again in a second".into(),
        }
    }
}

fn builder(pattern: &str) -> regex::RegexBuilder {
    let mut builder = regex::RegexBuilder::new(pattern);
    builder
        .size_limit(COMPILED_MAX_BYTES)
        .dfa_size_limit(LAZY_DFA_MAX_BYTES);
    builder
}

/// Checks `pattern` alone first, so that the anchoring group cannot change its meaning.
fn compile(pattern: &str) -> Compiled {
    builder(pattern).build().map_err(|err| error_text(&err))?;
    builder(&format!(r"\A(?:{pattern})"))
        .build()
        .map_err(|err| error_text(&err))
}

/// The regex crate's message without its multi-line pattern excerpt.
fn error_text(err: &regex::Error) -> String {
    if let regex::Error::CompiledTooBig(limit) = err {
        return format!("it compiles to more than {limit} bytes; use a simpler pattern (a \\w or \\d matches every Unicode letter or digit: [A-Za-z0-9_] is far smaller)");
    }
    let text = err.to_string();
    text.lines()
        .rev()
        .find(|line| line.starts_with("error:"))
        .map(|line| line.trim_start_matches("error:").trim().to_owned())
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn patterns_are_bounded_and_kept() {
        let costly = Costly::new(1);
        let regex = costly
            .pattern(r"arn:aws:iam::\d{12}:role/(Admin|Dev).*")
            .await
            .unwrap();
        assert!(regex.is_match("arn:aws:iam::123456789012:role/Admin"));
        assert!(!regex.is_match("xarn:aws:iam::123456789012:role/Admin"));
        assert!(costly
            .cache()
            .contains(r"arn:aws:iam::\d{12}:role/(Admin|Dev).*"));

        let long = "a".repeat(PATTERN_MAX_BYTES + 1);
        let err = costly.pattern(&long).await.unwrap_err();
        assert!(err.message.contains("at most 1024"), "{}", err.message);
        assert!(err.message.len() < 200, "{}", err.message);

        let started = std::time::Instant::now();
        let err = costly.pattern(r"\w{200}").await.unwrap_err();
        assert!(
            err.message.contains("compiles to more than"),
            "{}",
            err.message
        );
        // Refused by the size limit, not compiled whole (no timing assertion: the message is
        // the proof; this is printed for the reader).
        println!("\\w{{200}} refused in {:?}", started.elapsed());
        // A refusal is kept too.
        assert!(costly.cache().get(r"\w{200}").is_some_and(Result::is_err));

        let err = costly.pattern("(").await.unwrap_err();
        assert!(err.message.contains("unclosed group"), "{}", err.message);
    }

    #[tokio::test]
    async fn costly_queries_take_turns_and_too_many_waiting_are_turned_away() {
        let costly = Arc::new(Costly::new(1));
        let first = costly.turn().await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..WAITING_PER_PERMIT {
            let costly = costly.clone();
            waiting.push(tokio::spawn(async move { costly.turn().await.is_ok() }));
        }
        // Every waiter has queued before the next one is judged.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while costly.waiting.load(Ordering::SeqCst) < WAITING_PER_PERMIT {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiters did not queue"
            );
            tokio::task::yield_now().await;
        }
        assert!(costly.turn().await.is_err(), "one too many waits");
        drop(first);
        for waiter in waiting {
            assert!(waiter.await.unwrap(), "each waiter gets its turn");
        }
        assert_eq!(costly.waiting.load(Ordering::SeqCst), 0);
        assert!(costly.turn().await.is_ok());
    }
}
