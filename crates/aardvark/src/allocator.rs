//! How long the process's allocator, mimalloc (`src/main.rs` says why it is the one), keeps
//! freed memory before handing it back to the kernel, while collections run. Outside them,
//! mimalloc's own setting holds (its default, or `MIMALLOC_PURGE_DELAY`).
//!
//! The only `unsafe` in the project: calls into mimalloc's C API, which has no safe wrapper.

use std::os::raw::c_long;
use std::sync::Mutex;

use libmimalloc_sys::mi_option_t;

/// How long freed pages are kept while a collection runs. mimalloc's default, 1,000 ms (in
/// mimalloc 3), holds every buffer a collection freed in the last second on top of what it
/// holds now, and a collection frees in waves (its principals' jobs finish thousands at a
/// time): at 1,000 accounts x 100 principals the collection's peak RSS was 241 to 268 MB with
/// it, 209 to 225 MB with 10 ms (mimalloc 2's default), for about 4% more CPU. The server keeps
/// the default between collections: it reuses its answers' buffers, and with 10 ms several of
/// its query kinds served 5 to 41% fewer requests a second (BENCHMARKS.md).
const COLLECTING_PURGE_DELAY_MS: c_long = 10;

/// `mi_option_purge_delay` in `mimalloc.h`'s `mi_option_e`, which libmimalloc-sys does not
/// name (the test below checks the number against mimalloc's default for that option).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// The collections in flight in this process.
struct InFlight {
    collections: usize,
    /// The purge delay before the first of them, given back after the last.
    delay_before: c_long,
}

static IN_FLIGHT: Mutex<InFlight> = Mutex::new(InFlight {
    collections: 0,
    delay_before: 0,
});

fn in_flight() -> std::sync::MutexGuard<'static, InFlight> {
    IN_FLIGHT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Held by a running collection: freed memory goes back to the kernel after
/// [`COLLECTING_PURGE_DELAY_MS`] until the last collection of the process drops its own.
pub(crate) struct Collecting(());

/// Shortens the purge delay until the returned value, and every other, is dropped.
pub(crate) fn collecting() -> Collecting {
    let mut in_flight = in_flight();
    if in_flight.collections == 0 {
        in_flight.delay_before = purge_delay();
        set_purge_delay(COLLECTING_PURGE_DELAY_MS);
    }
    in_flight.collections += 1;
    Collecting(())
}

impl Drop for Collecting {
    fn drop(&mut self) {
        let mut in_flight = in_flight();
        in_flight.collections -= 1;
        if in_flight.collections == 0 {
            set_purge_delay(in_flight.delay_before);
        }
    }
}

#[allow(unsafe_code)]
fn purge_delay() -> c_long {
    // SAFETY: reads a number from mimalloc's table of options, allowed at any time.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[allow(unsafe_code)]
fn set_purge_delay(milliseconds: c_long) {
    // SAFETY: stores a number in mimalloc's table of options, allowed at any time from any
    // thread; the option's number is checked by the test below.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, milliseconds) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option's number is mimalloc 3's purge delay (the only option whose default is
    /// 1,000), shortened while any collection runs and given back after the last. No other
    /// unit test runs a collection.
    #[test]
    fn collections_shorten_the_purge_delay_while_they_run() {
        let before = purge_delay();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                before, 1000,
                "option {MI_OPTION_PURGE_DELAY} is not mimalloc 3's purge delay (default \
                 1,000 ms): the mimalloc version changed"
            );
        }
        let first = collecting();
        assert_eq!(purge_delay(), COLLECTING_PURGE_DELAY_MS);
        let second = collecting();
        drop(first);
        assert_eq!(
            purge_delay(),
            COLLECTING_PURGE_DELAY_MS,
            "a collection still runs"
        );
        drop(second);
        assert_eq!(purge_delay(), before);
    }
}
