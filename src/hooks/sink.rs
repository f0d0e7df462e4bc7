//! The event hook: a bounded queue that any thread pushes to without
//! waiting, and one task that POSTs batches of it to the application, in
//! order, retrying with backoff.
//!
//! The queue is a ring allocated once at its full size
//! (`hooks.events_queue_max`), so [`EventSink::push`] never allocates; a
//! full queue drops its oldest event. The task lives on the runtime handed
//! to [`EventSink::new`]. The batch being sent is out of the queue, so it
//! keeps its place ahead of newer events however often it is retried. This
//! file knows nothing of who produces events.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::HookClient;
use super::config::{parse_url, HooksConfig};
use super::event::{batch_json, HookEvent};
use crate::config::ConfigError;

/// A copy of the event-hook counters, for `/metrics`. Every pushed event
/// ends up in exactly one of `sent` and the three `dropped_*`, or is still
/// `queued` or in the batch being sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Events the application accepted (2xx).
    pub sent: u64,
    /// POSTs the application accepted.
    pub batches: u64,
    /// Events dropped, oldest first, because the queue was full.
    pub dropped_overflow: u64,
    /// Events dropped because the application refused their batch with a
    /// 4xx other than 408 and 429 (a batch it will never take).
    pub dropped_rejected: u64,
    /// Events still unsent when the shutdown deadline passed.
    pub dropped_shutdown: u64,
    /// POSTs that failed (timeout, connection error, non-2xx).
    pub failures: u64,
    /// POSTs that were a retry of a failed one.
    pub retries: u64,
    /// Events waiting in the queue now.
    pub queued: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    batches: AtomicU64,
    dropped_overflow: AtomicU64,
    dropped_rejected: AtomicU64,
    dropped_shutdown: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
}

/// Sends events to the application in batches. Cheap to clone; every clone
/// feeds the same queue and task.
#[derive(Clone)]
pub struct EventSink {
    shared: Arc<Shared>,
    /// The sending task, taken by [`EventSink::shutdown`].
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// The shutdown deadline, once set.
    stop: Arc<watch::Sender<Option<Instant>>>,
    publish: bool,
}

/// The events waiting, oldest first.
struct Queue {
    events: VecDeque<HookEvent>,
    /// When the oldest waiting event was pushed (for events left behind by
    /// a partial drain: when they were left).
    first_at: Option<Instant>,
}

/// What the pushers and the task share.
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the task: on the first event of an empty queue, and when the
    /// queue reaches a full batch.
    wake: Notify,
    queue_max: usize,
    batch_max: usize,
    counters: Counters,
}

/// The task's settings.
struct Sender {
    shared: Arc<Shared>,
    client: HookClient,
    batch_wait: Duration,
    timeout: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    stop: watch::Receiver<Option<Instant>>,
    /// Set when every [`EventSink`] is gone without a shutdown: the task
    /// then ends as if the deadline were that moment.
    orphaned_at: Option<Instant>,
}

impl EventSink {
    /// Builds the hook from `config.events_url` (which must not be empty)
    /// and the `events_*` and `retry_*` keys, and starts its task on `runtime`.
    pub fn new(config: &HooksConfig, runtime: &Handle) -> Result<EventSink, ConfigError> {
        config.validate()?;
        if config.events_url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "hooks.events_url".to_string(),
                rule: "must be set to build the event hook".to_string(),
            });
        }
        let uri = parse_url(&config.events_url, "events_url")?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: VecDeque::with_capacity(config.events_queue_max),
                first_at: None,
            }),
            wake: Notify::new(),
            queue_max: config.events_queue_max,
            batch_max: config.events_batch_max,
            counters: Counters::default(),
        });
        let (stop, stop_rx) = watch::channel(None);
        let sender = Sender {
            shared: shared.clone(),
            client: HookClient::new(uri, 1),
            batch_wait: Duration::from_millis(config.events_batch_ms),
            timeout: Duration::from_millis(config.events_timeout_ms),
            retry_initial: Duration::from_millis(config.retry_initial_ms),
            retry_max: Duration::from_millis(config.retry_max_ms),
            stop: stop_rx,
            orphaned_at: None,
        };
        let task = runtime.spawn(sender.run());
        Ok(EventSink {
            shared,
            task: Arc::new(Mutex::new(Some(task))),
            stop: Arc::new(stop),
            publish: config.events_publish,
        })
    }

    /// Whether `publish` events are wanted (`hooks.events_publish`).
    pub fn wants_publish(&self) -> bool {
        self.publish
    }

    /// Queues `event`. Never waits for the application and never allocates:
    /// it takes a lock held only for queue operations, and when the queue is
    /// full it drops the oldest event (counted in `dropped_overflow`).
    pub fn push(&self, event: HookEvent) {
        let shared = &*self.shared;
        let len = {
            let mut queue = lock(&shared.queue);
            if queue.events.len() >= shared.queue_max {
                queue.events.pop_front();
                shared.counters.dropped_overflow.fetch_add(1, Ordering::Relaxed);
            }
            if queue.events.is_empty() {
                queue.first_at = Some(Instant::now());
            }
            queue.events.push_back(event);
            queue.events.len()
        };
        if len == 1 || len == shared.batch_max {
            shared.wake.notify_one();
        }
    }

    /// The counters now.
    pub fn stats(&self) -> EventStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EventStats {
            sent: get(&c.sent),
            batches: get(&c.batches),
            dropped_overflow: get(&c.dropped_overflow),
            dropped_rejected: get(&c.dropped_rejected),
            dropped_shutdown: get(&c.dropped_shutdown),
            failures: get(&c.failures),
            retries: get(&c.retries),
            queued: lock(&self.shared.queue).events.len() as u64,
        }
    }

    /// Sends what is queued, without waiting for fuller batches, until the
    /// queue is empty or `grace` has passed; what is left then is counted in
    /// `dropped_shutdown`. Returns when the task has ended. Events pushed
    /// after the task ended stay queued and unsent. A second call returns at once.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.stop.send_replace(Some(deadline));
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            // The task watches the deadline itself; the extra second only
            // covers a task that cannot be polled (a stopped runtime).
            let _ = tokio::time::timeout_at(deadline + Duration::from_secs(1), task).await;
        }
    }
}

impl Sender {
    /// The task: wait for events, gather a batch, send it until it is
    /// accepted, rejected for good, or the shutdown deadline passes.
    async fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let mut backoff = self.retry_initial;
        // Whether a POST just finished: events that came meanwhile go at once.
        let mut backlog = false;
        loop {
            if !self.wait_for_batch(backlog).await {
                return;
            }
            backlog = true;
            let batch: Vec<HookEvent> = {
                let mut queue = lock(&shared.queue);
                let n = queue.events.len().min(shared.batch_max);
                let batch = queue.events.drain(..n).collect();
                queue.first_at = (!queue.events.is_empty()).then(Instant::now);
                batch
            };
            if batch.is_empty() {
                continue;
            }
            let count = batch.len() as u64;
            let body = Bytes::from(batch_json(&batch));
            drop(batch);
            let counters = &shared.counters;
            let mut first = true;
            loop {
                if !first {
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                }
                first = false;
                let timeout = match self.deadline() {
                    Some(d) => self.timeout.min(d.saturating_duration_since(Instant::now())),
                    None => self.timeout,
                };
                let answer = tokio::select! {
                    answer = self.client.post(body.clone(), timeout) => answer,
                    () = past_deadline(self.stop.clone()) => {
                        let left = lock(&shared.queue).events.len() as u64;
                        counters.dropped_shutdown.fetch_add(count + left, Ordering::Relaxed);
                        return;
                    }
                };
                match answer {
                    Ok(status) if status.is_success() => {
                        counters.sent.fetch_add(count, Ordering::Relaxed);
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                        backoff = self.retry_initial;
                        break;
                    }
                    Ok(status) if status.is_client_error() && status != 408 && status != 429 => {
                        counters.failures.fetch_add(1, Ordering::Relaxed);
                        counters.dropped_rejected.fetch_add(count, Ordering::Relaxed);
                        log::warn!(
                            "event hook: the application refused a batch of {count} events with {status}; dropped"
                        );
                        break;
                    }
                    answer => {
                        counters.failures.fetch_add(1, Ordering::Relaxed);
                        match answer {
                            Ok(status) => log::debug!("event hook: answered {status}; retrying in {backoff:?}"),
                            Err(e) => log::debug!("event hook: {e}; retrying in {backoff:?}"),
                        }
                    }
                }
                if !self.pause(backoff).await {
                    // Shutdown deadline passed with this batch unsent.
                    let left = lock(&shared.queue).events.len() as u64;
                    counters.dropped_shutdown.fetch_add(count + left, Ordering::Relaxed);
                    return;
                }
                backoff = (backoff * 2).min(self.retry_max);
            }
        }
    }

    /// The shutdown deadline, once set.
    fn deadline(&self) -> Option<Instant> {
        self.stop.borrow().or(self.orphaned_at)
    }

    /// Waits for the shutdown deadline to change; when the sink is gone,
    /// records that instead (and the deadline is then set, so callers stop
    /// waiting on this).
    async fn stop_changed(&mut self) {
        if self.stop.changed().await.is_err() && self.orphaned_at.is_none() {
            self.orphaned_at = Some(Instant::now());
        }
    }

    /// Waits until a batch should go: `batch_max` events queued, or
    /// `batch_wait` after the oldest waiting event was pushed; at once when
    /// `backlog` (events that queued up while the previous POST was in
    /// flight have waited enough: the application sets the pace) or when
    /// shutting down. False when the task should end (shutting down and
    /// nothing queued, or past the deadline).
    async fn wait_for_batch(&mut self, mut backlog: bool) -> bool {
        let shared = Arc::clone(&self.shared);
        // Wait for a first event.
        let first_at = loop {
            let (queued, first_at) = {
                let queue = lock(&shared.queue);
                (queue.events.len(), queue.first_at)
            };
            if let Some(deadline) = self.deadline() {
                if queued == 0 {
                    return false;
                }
                if Instant::now() >= deadline {
                    shared
                        .counters
                        .dropped_shutdown
                        .fetch_add(queued as u64, Ordering::Relaxed);
                    return false;
                }
                return true;
            }
            if queued > 0 && backlog {
                return true;
            }
            if queued > 0 {
                break first_at.unwrap_or_else(Instant::now);
            }
            // What arrives from now on did not wait through a POST.
            backlog = false;
            tokio::select! {
                () = shared.wake.notified() => {}
                () = self.stop_changed() => {}
            }
        };
        // Gather more until the batch is full or its time is up.
        let until = first_at + self.batch_wait;
        while lock(&shared.queue).events.len() < shared.batch_max && self.deadline().is_none() {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                () = shared.wake.notified() => {}
                () = self.stop_changed() => {}
            }
        }
        true
    }

    /// Sleeps `backoff`, but not past the shutdown deadline. False when the
    /// deadline has passed.
    async fn pause(&mut self, backoff: Duration) -> bool {
        let wake = Instant::now() + backoff;
        loop {
            let deadline = self.deadline();
            let until = deadline.map_or(wake, |d| wake.min(d));
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(until) => {}
                () = self.stop_changed() => continue,
            }
            return deadline.is_none_or(|d| Instant::now() < d);
        }
    }
}

/// Completes once a shutdown deadline is set and has passed, or at once
/// when every [`EventSink`] is gone.
async fn past_deadline(mut stop: watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *stop.borrow_and_update();
        match deadline {
            Some(deadline) => {
                tokio::time::sleep_until(deadline).await;
                return;
            }
            None => {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Locks the queue; a panic while it was held leaves a valid queue, so
/// poisoning is ignored.
fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}
