//! Bounds on the connections `serve` holds, so that no client can hold the server's file
//! descriptors or memory by opening connections and sending little or nothing:
//! - at most `MAX_CONNECTIONS` at once (and never more than the process's file limit allows,
//!   which is raised to its hard limit at start); a connection past the limit is closed at once
//!   and the refusals are logged (one line per 10 seconds at most, with their number);
//! - `HEADER_READ_TIMEOUT_SECONDS` for a TLS handshake, and for each request's headers from
//!   the connection's start or the end of the previous answer: a silent connection, a drip-fed
//!   header and an idle keep-alive connection are all closed after it.
//!
//! HTTP/1.1 only: HTTP/2 would let a connection stay open and idle with nothing to bound it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Settings;

/// File descriptors kept for everything but client connections (the database pool, the
/// collector's HTTPS connections, files).
const RESERVED_FILES: u64 = 256;
/// How often refusals are logged while they go on.
const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

/// The bounds of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// The shipped defaults.
    fn default() -> Self {
        Self::from_settings(&Settings::default())
    }
}

impl ConnectionLimits {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_connections: settings.max_connections,
            header_read_timeout: settings.header_read_timeout,
        }
    }

    /// These limits, with at most as many connections as the process may open files beside
    /// its own (after raising its soft limit to the hard one); says so when that is fewer.
    pub fn within_file_limit(self) -> Self {
        let files = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(files) => files,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read or raise the open-file limit");
                return self;
            }
        };
        let fit =
            usize::try_from(files.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX);
        if fit < self.max_connections {
            tracing::warn!(
                max_connections = self.max_connections,
                open_files = files,
                serving = fit,
                "MAX_CONNECTIONS is more than the open-file limit allows: at most {fit} connections at once (raise the limit, e.g. LimitNOFILE in the systemd unit)"
            );
            return Self {
                max_connections: fit,
                ..self
            };
        }
        self
    }
}

/// Counts connections, closing those past the limit (an axum-server acceptor, which runs
/// before the TLS handshake).
#[derive(Clone)]
pub struct Limited {
    permits: Arc<Semaphore>,
    max: usize,
    refusals: Arc<Mutex<Refusals>>,
}

/// Refusals not yet logged, and when the last line was written.
#[derive(Default)]
struct Refusals {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl Limited {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            refusals: Arc::default(),
        }
    }

    fn refuse(&self) {
        let mut refusals = self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        refusals.unlogged += 1;
        let due = refusals
            .logged_at
            .is_none_or(|at| at.elapsed() >= REFUSALS_LOGGED_EVERY);
        if due {
            tracing::warn!(
                max_connections = self.max,
                refused = refusals.unlogged,
                "connection limit reached: refused {} new connection(s) while {} were open (MAX_CONNECTIONS)",
                refusals.unlogged,
                self.max
            );
            refusals.unlogged = 0;
            refusals.logged_at = Some(Instant::now());
        }
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for Limited {
    type Stream = Counted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok((
                Counted {
                    stream,
                    _permit: permit,
                },
                service,
            )),
            Err(_) => {
                self.refuse();
                // Dropping the stream closes the connection now.
                Err(io::Error::other("connection limit reached"))
            }
        })
    }
}

/// A connection that holds its place among the open ones until it closes.
pub struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
