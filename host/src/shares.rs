//! Fair share of the pool's instance slots between workspaces: no workspace may hold more than
//! its share at once, so one tenant's flood of slow runs (or of nested calls) cannot take every
//! slot and leave the others with `Busy`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Instance slots held per workspace, capped at `cap` each.
#[derive(Debug)]
pub(crate) struct Shares {
    cap: u32,
    held: Arc<Mutex<HashMap<String, u32>>>,
}

/// One slot held by a workspace; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    workspace: String,
    held: Arc<Mutex<HashMap<String, u32>>>,
}

impl Shares {
    pub(crate) fn new(cap: u32) -> Self {
        Shares {
            cap: cap.max(1),
            held: Arc::default(),
        }
    }

    pub(crate) fn cap(&self) -> u32 {
        self.cap
    }

    /// A slot for `workspace`, or `None` when it already holds its whole share.
    pub(crate) fn take(&self, workspace: &str) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(workspace.to_owned()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            workspace: workspace.to_owned(),
            held: self.held.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.workspace) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.workspace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_holds_at_most_its_share_and_others_still_get_slots() {
        let shares = Shares::new(2);
        let a1 = shares.take("a").unwrap();
        let _a2 = shares.take("a").unwrap();
        assert!(shares.take("a").is_none(), "a's share is full");
        let _b = shares.take("b").expect("b still gets a slot");
        drop(a1);
        assert!(
            shares.take("a").is_some(),
            "a slot given back can be taken again"
        );
    }
}
