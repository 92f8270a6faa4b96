//! Stopping a run (SIGTERM, SIGINT): the `Stopper` that asks, and the `Stop` signal every
//! part of a run reads.

use std::sync::Arc;

/// Asks a run to stop: no new account or principal starts, polling jobs are given up, writes
/// in flight finish, and the run is recorded `interrupted`.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<tokio::sync::watch::Sender<bool>>);

/// A stopper and the signal it sets.
pub(super) fn stop_signal() -> (Stopper, Stop) {
    let (sender, receiver) = tokio::sync::watch::channel(false);
    (Stopper(Arc::new(sender)), Stop(receiver))
}

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Whether the run was asked to stop, and a way to wait for it.
#[derive(Debug, Clone)]
pub(crate) struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the run is asked to stop.
    pub async fn wait(&self) {
        let mut receiver = self.0.clone();
        let _ = receiver.wait_for(|stopped| *stopped).await;
    }
}
