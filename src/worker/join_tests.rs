//! `Workers::join` against a worker that renews itself while being joined:
//! the renewing thread must be able to store its successor's handle.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Threads, Workers};
use crate::mailbox::lock;

#[test]
fn join_follows_a_renewal_that_happens_while_it_waits() {
    let threads: Threads = Arc::new(Mutex::new(vec![None]));
    let table = threads.clone();
    let first = std::thread::spawn(move || {
        // Renew once join has taken this thread's handle (it is joining
        // it, or about to): the successor's handle goes into the table.
        while lock(&table)[0].is_some() {
            std::thread::yield_now();
        }
        let successor = std::thread::spawn(|| {});
        lock(&table)[0] = Some(successor);
    });
    lock(&threads)[0] = Some(first);
    let (done, joined) = mpsc::channel();
    let workers = Workers {
        threads: threads.clone(),
    };
    std::thread::spawn(move || {
        workers.join();
        let _ = done.send(());
    });
    joined
        .recv_timeout(Duration::from_secs(30))
        .expect("join returns once the renewed worker has ended");
    assert!(lock(&threads)[0].is_none(), "the successor was joined too");
}
