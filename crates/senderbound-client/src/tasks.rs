//! [`TaskKeys`]: one DPoP key per task, so a token leaked from one task's
//! tool trace is useless to every other task, and a compromised task cannot
//! sign for the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{DpopKey, DpopSession};

/// A registry of DPoP sessions (key, server nonces, held token) by task.
///
/// ```
/// use senderbound_client::TaskKeys;
///
/// let keys = TaskKeys::new();
/// let summarise = keys.session("summarise-inbox");
/// let pay = keys.session("pay-invoice");
/// assert_ne!(summarise.key().jkt(), pay.key().jkt());
/// // The same task gets the same key (and its token and nonces).
/// assert_eq!(keys.session("pay-invoice").key().jkt(), pay.key().jkt());
/// // At the end of the task, its key and token are dropped.
/// assert!(keys.finish("pay-invoice"));
/// assert_ne!(keys.session("pay-invoice").key().jkt(), pay.key().jkt());
/// ```
#[derive(Debug, Default)]
pub struct TaskKeys {
    sessions: Mutex<HashMap<String, Arc<DpopSession>>>,
}

impl TaskKeys {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The session of `task`: created with a fresh key on first use.
    pub fn session(&self, task: &str) -> Arc<DpopSession> {
        let mut sessions = match self.sessions.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        sessions
            .entry(task.to_owned())
            .or_insert_with(|| Arc::new(DpopSession::new(DpopKey::generate())))
            .clone()
    }

    /// Forgets `task`'s key, token and nonces (the key is dropped once no
    /// one holds its session); `true` if the task had one.
    pub fn finish(&self, task: &str) -> bool {
        match self.sessions.lock() {
            Ok(mut s) => s.remove(task).is_some(),
            Err(poisoned) => poisoned.into_inner().remove(task).is_some(),
        }
    }

    /// The tasks that have a key.
    pub fn tasks(&self) -> Vec<String> {
        match self.sessions.lock() {
            Ok(s) => s.keys().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().keys().cloned().collect(),
        }
    }
}
