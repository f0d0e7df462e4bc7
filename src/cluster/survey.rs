//! `/info?cname=` across the cluster: a survey (Centrifugo's `Node.Survey`).
//! The asking node publishes `s <id> <origin> <cname>` on `<p>:ctl`; every
//! node (the asker too) answers its local subscriber count on
//! `<p>:reply:<origin>`; the asker sums the answers until every live node of
//! the registry answered or `cluster.survey_timeout_ms` passed. No
//! per-subscriber writes to Redis. This module keeps the pending surveys; the
//! connections feed it answers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

/// The outcome of a survey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    /// Sum of the answers received.
    pub subscribers: u64,
    /// Nodes that answered.
    pub answered: usize,
    /// Nodes expected to answer (live in the registry, plus this one).
    pub expected: usize,
}

struct Pending {
    expected: HashSet<String>,
    answers: HashMap<String, u64>,
    done: Option<oneshot::Sender<()>>,
}

/// Pending surveys of this node.
#[derive(Default)]
pub(crate) struct Surveys {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
}

impl Surveys {
    /// Opens a survey expecting answers from `expected`.
    pub(crate) fn begin(&self, expected: HashSet<String>) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.insert(
            id,
            Pending {
                expected,
                answers: HashMap::new(),
                done: Some(tx),
            },
        );
        (id, rx)
    }

    /// Records `node`'s answer; wakes the asker when every expected node answered.
    pub(crate) fn answer(&self, id: u64, node: &str, count: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = p.get_mut(&id) else {
            return; // late answer to a finished survey
        };
        s.answers.insert(node.to_string(), count);
        if s.expected.iter().all(|n| s.answers.contains_key(n)) {
            if let Some(tx) = s.done.take() {
                let _ = tx.send(());
            }
        }
    }

    /// Closes the survey and sums what arrived.
    pub(crate) fn finish(&self, id: u64) -> Survey {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match p.remove(&id) {
            Some(s) => Survey {
                subscribers: s.answers.values().sum(),
                answered: s.answers.len(),
                expected: s.expected.len(),
            },
            None => Survey {
                subscribers: 0,
                answered: 0,
                expected: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_when_all_expected_answered() {
        let s = Surveys::default();
        let (id, mut rx) = s.begin(["a".to_string(), "b".to_string()].into());
        s.answer(id, "a", 3);
        assert!(rx.try_recv().is_err());
        s.answer(id, "x", 1); // a node not in the registry yet still counts
        s.answer(id, "b", 4);
        assert!(rx.try_recv().is_ok());
        assert_eq!(
            s.finish(id),
            Survey {
                subscribers: 8,
                answered: 3,
                expected: 2
            }
        );
        s.answer(id, "a", 9); // late: ignored
        assert_eq!(s.finish(id).answered, 0);
    }
}
