//! Fair share of the event consumer's concurrency between workspaces: every tenant shares one
//! consumer, so without a per-workspace cap one workspace's slow automations could hold every
//! permit and leave the others' events waiting behind them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// `total` permits, of which one workspace holds at most `share` at once.
#[derive(Debug)]
pub(crate) struct FairPermits {
    global: Arc<Semaphore>,
    share: usize,
    held: Mutex<HashMap<String, usize>>,
    /// Woken when a workspace gives a permit back.
    freed: Notify,
}

/// One permit of one workspace; given back when dropped.
#[derive(Debug)]
pub(crate) struct FairPermit {
    permits: Arc<FairPermits>,
    workspace: String,
    _global: Option<OwnedSemaphorePermit>,
}

impl FairPermits {
    /// `total` permits, of which one workspace holds at most `share` at once.
    pub(crate) fn new(total: usize, share: usize) -> Arc<Self> {
        Arc::new(FairPermits {
            global: Arc::new(Semaphore::new(total.max(1))),
            share: share.max(1),
            held: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        })
    }

    /// Waits until `workspace` holds less than its share, then for a free permit. A workspace
    /// waiting for its share holds nothing the others need.
    pub(crate) async fn acquire(self: &Arc<Self>, workspace: &str) -> FairPermit {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_count(workspace) {
                break;
            }
            freed.await;
        }
        // The semaphore is never closed, so this is always a permit.
        let global = self.global.clone().acquire_owned().await.ok();
        FairPermit {
            permits: self.clone(),
            workspace: workspace.to_owned(),
            _global: global,
        }
    }

    fn try_count(&self, workspace: &str) -> bool {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(workspace.to_owned()).or_insert(0);
        if *n >= self.share {
            return false;
        }
        *n += 1;
        true
    }
}

impl Drop for FairPermit {
    fn drop(&mut self) {
        {
            let mut held = self
                .permits
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = held.get_mut(&self.workspace) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(&self.workspace);
                }
            }
        }
        self.permits.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_busy_workspace_leaves_permits_for_the_others() {
        tokio::time::pause();
        let permits = FairPermits::new(4, 2);
        let a1 = permits.acquire("a").await;
        let _a2 = permits.acquire("a").await;
        let third = tokio::spawn({
            let permits = permits.clone();
            async move { permits.acquire("a").await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!third.is_finished(), "a waits beyond its share");
        let b = tokio::time::timeout(Duration::from_secs(1), permits.acquire("b")).await;
        assert!(b.is_ok(), "b still gets a permit");
        drop(a1);
        let a3 = tokio::time::timeout(Duration::from_secs(1), third).await;
        assert!(a3.is_ok(), "a permit given back wakes the waiting delivery");
    }
}
