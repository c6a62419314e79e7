//! Compile slots: how many component compiles run at once, in this process and per workspace.
//!
//! Wasmtime 48 cannot stop a compile once started: `Component::new` runs Cranelift to the end
//! on its blocking thread (its interruption mechanisms, epochs and fuel, apply to running
//! guest code, not to compilation), so a request that times out leaves its compile running.
//! What bounds that cost is the number of compiles: each one holds a [`CompileSlot`] until the
//! compile itself ends (not when its request gives up), and an upload that finds no free slot
//! is refused at once — 429 when its workspace already compiles its share, 503 when the
//! process does — instead of queueing more work behind a compile nobody waits for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use refract_core::WorkspaceId;
use refract_http::ApiError;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The compile slots of one process.
#[derive(Debug)]
pub struct CompileSlots {
    process: Arc<Semaphore>,
    per_workspace: usize,
    /// Compiles running, by workspace (absent: none).
    running: Arc<Mutex<HashMap<WorkspaceId, usize>>>,
}

/// A compile's right to run: frees its slot when dropped.
#[derive(Debug)]
pub struct CompileSlot {
    _permit: OwnedSemaphorePermit,
    workspace: WorkspaceId,
    running: Arc<Mutex<HashMap<WorkspaceId, usize>>>,
}

impl Drop for CompileSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = running.get_mut(&self.workspace) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.workspace);
            }
        }
    }
}

impl CompileSlots {
    /// At most `process` compiles at once, `per_workspace` of them for one workspace.
    pub fn new(process: usize, per_workspace: usize) -> Self {
        CompileSlots {
            process: Arc::new(Semaphore::new(process)),
            per_workspace,
            running: Arc::default(),
        }
    }

    /// A free slot for a compile of `workspace`, or the 429/503 that says why there is none.
    pub fn try_acquire(&self, workspace: &WorkspaceId) -> Result<CompileSlot, ApiError> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = running.get(workspace).copied().unwrap_or(0);
        if mine >= self.per_workspace {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!(
                    "this workspace already compiles {mine} components; retry when one is done"
                ),
            )
            .with_details(json!({ "limit": self.per_workspace })));
        }
        let Ok(permit) = self.process.clone().try_acquire_owned() else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "every compile slot is busy; retry later",
            ));
        };
        running.insert(workspace.clone(), mine + 1);
        Ok(CompileSlot {
            _permit: permit,
            workspace: workspace.clone(),
            running: self.running.clone(),
        })
    }
}

/// Why a compile's result did not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    /// The request stopped waiting; the compile runs on, holding its slot.
    TimedOut,
    /// The compile's task panicked (a bug of ours, never of the upload); its slot is free.
    Failed,
}

/// Runs `compile` on its own task holding `slot` until the compile ends, and waits for it at
/// most `timeout`: a compile that outlives its request keeps its slot, so timed-out compiles
/// cannot pile up beyond the caps.
pub async fn run<T: Send + 'static>(
    slot: CompileSlot,
    timeout: Duration,
    compile: impl Future<Output = T> + Send + 'static,
) -> Result<T, Unfinished> {
    let task = tokio::spawn(async move {
        let out = compile.await;
        drop(slot);
        out
    });
    match tokio::time::timeout(timeout, task).await {
        Err(_) => Err(Unfinished::TimedOut),
        Ok(Ok(out)) => Ok(out),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "a compile task failed");
            Err(Unfinished::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(id: &str) -> WorkspaceId {
        WorkspaceId::new(id).expect("a workspace id")
    }

    #[test]
    fn slots_are_capped_per_workspace_then_per_process() {
        let slots = CompileSlots::new(2, 1);
        let a = slots.try_acquire(&ws("wsa")).expect("a first compile");
        assert_eq!(
            slots.try_acquire(&ws("wsa")).unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        let _b = slots
            .try_acquire(&ws("wsb"))
            .expect("another workspace compiles");
        assert_eq!(
            slots.try_acquire(&ws("wsc")).unwrap_err().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(a);
        assert!(
            slots.try_acquire(&ws("wsa")).is_ok(),
            "a finished compile frees its slot"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_compile_keeps_its_slot_until_it_ends() {
        let slots = CompileSlots::new(4, 1);
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let slot = slots.try_acquire(&ws("wsa")).expect("slot");
        let out = run(slot, Duration::from_secs(60), async move {
            finished.await.is_ok()
        })
        .await;
        assert_eq!(out, Err(Unfinished::TimedOut));
        // The request gave up; the compile runs on and still counts.
        assert_eq!(
            slots.try_acquire(&ws("wsa")).unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        finish.send(()).ok();
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if let Ok(slot) = slots.try_acquire(&ws("wsa")) {
                assert_eq!(run(slot, Duration::from_secs(60), async { 7 }).await, Ok(7));
                return;
            }
        }
        panic!("the slot was not freed when the compile ended");
    }
}
