//! When a message has reached every subscriber, exactly, so that the server's
//! memory can be sampled with nothing in flight. The publisher names the
//! message it waits for (the *target*, in [`Shared::target`]); each worker
//! counts its live connections that have got it ([`Reach`], published to its
//! [`Live::reached`] as one packed word), and the publisher compares the sum
//! with the connections that are ready and not failed ([`all_reached`]).
//! Also the order of the run's memory samples ([`Point`], [`points_after`]).
//! Pure bookkeeping: no sockets, no clock, no threads.
//!
//! [`Shared::target`]: crate::live::Shared::target
//! [`Live::reached`]: crate::live::Live::reached

/// The target when the publisher waits for nothing.
pub const NO_TARGET: u32 = u32::MAX;

/// One worker's count of live connections that have the target message.
///
/// Messages are published one at a time while the publisher waits, so no
/// connection can hold message `k` before `k` becomes the target: the count
/// starts at 0 whenever the target changes, grows when a connection's next
/// expected message moves past the target, and shrinks when such a
/// connection fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    target: u32,
    count: u32,
}

impl Default for Reach {
    fn default() -> Reach {
        Reach {
            target: NO_TARGET,
            count: 0,
        }
    }
}

impl Reach {
    fn sync(&mut self, target: u32) {
        if self.target != target {
            *self = Reach { target, count: 0 };
        }
    }

    /// A connection's next expected message moved from `before` to `after`
    /// (a delivery) while `target` was the target.
    pub fn crossed(&mut self, target: u32, before: u32, after: u32) {
        self.sync(target);
        if target != NO_TARGET && before <= target && target < after {
            self.count = self.count.saturating_add(1);
        }
    }

    /// A ready connection whose next expected message was `next_msg` failed.
    pub fn lost(&mut self, target: u32, next_msg: u32) {
        self.sync(target);
        if target != NO_TARGET && next_msg > target {
            self.count = self.count.saturating_sub(1);
        }
    }

    /// The count and the target it is for, as one word (target high).
    pub fn pack(self) -> u64 {
        (u64::from(self.target) << 32) | u64::from(self.count)
    }

    /// The count in a [`Reach::pack`]ed word if it is for `target`, else 0
    /// (that worker has seen no delivery of `target` yet).
    pub fn count_in(packed: u64, target: u32) -> u64 {
        if (packed >> 32) as u32 == target {
            packed & u64::from(u32::MAX)
        } else {
            0
        }
    }
}

/// True when every connection that is ready and has not failed since has the
/// target: `reached` of `ready - failed_ready`. Never true with none alive.
pub fn all_reached(reached: u64, ready: u64, failed_ready: u64) -> bool {
    let alive = ready.saturating_sub(failed_ready);
    alive > 0 && reached >= alive
}

/// A moment at which the server's memory is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Every subscriber ready, nothing published yet.
    Ready,
    /// The first message has reached every subscriber.
    AfterFirst,
    /// The last message has reached every subscriber.
    AfterLast,
}

impl Point {
    /// The key in the JSON summary.
    pub fn key(self) -> &'static str {
        match self {
            Point::Ready => "server_rss_ready",
            Point::AfterFirst => "server_rss_after_first",
            Point::AfterLast => "server_rss_after_last",
        }
    }
}

/// The samples due once message `number` (0-based) of `messages` has reached
/// every subscriber; empty for a message the publisher does not wait for.
/// [`Point::Ready`] is due before message 0, so never here.
pub fn points_after(number: u32, messages: u32) -> &'static [Point] {
    let first = number == 0;
    let last = number.checked_add(1) == Some(messages);
    match (first, last) {
        (true, true) => &[Point::AfterFirst, Point::AfterLast],
        (true, false) => &[Point::AfterFirst],
        (false, true) => &[Point::AfterLast],
        (false, false) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_connections_past_the_target() {
        let mut r = Reach::default();
        // Message 0 is the target: one connection gets it; another gets
        // message 1 without 0 (a skip), which also puts it past the target:
        // the server will not send it message 0 any more.
        r.crossed(0, 0, 1);
        r.crossed(0, 0, 2);
        assert_eq!(Reach::count_in(r.pack(), 0), 2);
        // A connection that had it fails; one that did not, fails too.
        r.lost(0, 1);
        r.lost(0, 0);
        assert_eq!(Reach::count_in(r.pack(), 0), 1);
        // A delivery below the target (a late earlier message) is not it.
        r.crossed(0, 0, 0);
        assert_eq!(Reach::count_in(r.pack(), 0), 1);
    }

    #[test]
    fn a_new_target_starts_from_zero() {
        let mut r = Reach::default();
        r.crossed(0, 0, 1);
        r.crossed(0, 0, 1);
        assert_eq!(Reach::count_in(r.pack(), 9), 0, "a count is only for its target");
        // Messages 1..8 went out without a wait; message 9 is the target now.
        r.crossed(9, 5, 6);
        assert_eq!(Reach::count_in(r.pack(), 9), 0);
        r.crossed(9, 9, 10);
        assert_eq!(Reach::count_in(r.pack(), 9), 1);
        assert_eq!(Reach::count_in(r.pack(), 0), 0);
        // A failure seen first under a new target resets the count as well.
        r.lost(11, 12);
        assert_eq!(Reach::count_in(r.pack(), 11), 0);
        assert_eq!(Reach::count_in(r.pack(), 9), 0);
    }

    #[test]
    fn no_target_counts_nothing() {
        let mut r = Reach::default();
        assert_eq!(r.pack() >> 32, u64::from(NO_TARGET));
        r.crossed(NO_TARGET, 0, 1);
        r.lost(NO_TARGET, 1);
        assert_eq!(Reach::count_in(r.pack(), NO_TARGET), 0);
        assert_eq!(Reach::count_in(r.pack(), 0), 0);
    }

    #[test]
    fn everyone_alive_must_have_it() {
        assert!(all_reached(10, 10, 0));
        assert!(!all_reached(9, 10, 0));
        assert!(all_reached(9, 10, 1), "a failed connection is not waited for");
        assert!(!all_reached(0, 0, 0), "nobody alive: nothing reached");
        assert!(!all_reached(5, 3, 3));
    }

    #[test]
    fn samples_follow_the_first_and_the_last_message() {
        assert_eq!(points_after(0, 1), &[Point::AfterFirst, Point::AfterLast]);
        assert_eq!(points_after(0, 10), &[Point::AfterFirst]);
        for k in 1..9 {
            assert!(points_after(k, 10).is_empty(), "message {k}");
        }
        assert_eq!(points_after(9, 10), &[Point::AfterLast]);
        assert_eq!(points_after(1, 2), &[Point::AfterLast]);
        assert_eq!(points_after(u32::MAX, u32::MAX), &[] as &[Point]);
        assert_eq!(
            [Point::Ready, Point::AfterFirst, Point::AfterLast].map(Point::key),
            ["server_rss_ready", "server_rss_after_first", "server_rss_after_last"]
        );
    }
}
