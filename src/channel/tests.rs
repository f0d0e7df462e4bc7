use super::*;

fn c(s: &str) -> Arc<str> {
    s.into()
}

fn limits() -> Limits {
    Limits {
        max_channels: 4,
        max_subscribers: 2,
        buffer_size: 3,
        channel_timeout: 4,
        token_auth: false,
        cluster: false,
    }
}

#[derive(Default)]
struct Log(Vec<String>);

impl Log {
    fn sink(&mut self) -> impl FnMut(Notice) + '_ {
        |n| {
            self.0.push(match n {
                Notice::Online(c) => format!("1 {c}"),
                Notice::Offline(c) => format!("0 {c}"),
                Notice::Message(w, _, m) => format!("deliver {w} {} {}", m.seq, m.content),
                Notice::Broadcast(w, _, seq) => format!("broadcast {w} {seq}"),
                Notice::Close(w, _, seq) => format!("close {w} {seq}"),
                Notice::Joined(c) => format!("join {c}"),
                Notice::Left(c) => format!("leave {c}"),
                Notice::Synced(w, _, next, h) => {
                    let seqs: Vec<String> = h.iter().map(|m| m.seq.to_string()).collect();
                    format!("synced {w} {next} [{}]", seqs.join(","))
                }
                Notice::Reset(w, _, next) => format!("reset {w} {next}"),
            })
        }
    }
}

fn seqs(start: &Start) -> Vec<i32> {
    match start {
        Start::Replay(v) => v.iter().map(|e| e.seq).collect(),
        _ => vec![],
    }
}

#[test]
fn seq_starts_at_one_and_history_trims_like_icomet() {
    let mut t = ChannelTable::new(limits());
    let mut log = Log::default();
    for i in 1..=6 {
        assert_eq!(t.publish("c", &c("x"), &mut log.sink()), Ok(i));
    }
    // Size 3: trimmed back to 3 once it holds 1.5 x 3 = 4.5, i.e. 5, entries;
    // after 6 pushes it holds 3..=6 (reference §2.4, observed).
    let s = t.subscribe("c", "", 1, 0, false, &mut log.sink()).expect("accepted");
    assert_eq!(seqs(&s.start), vec![3, 4, 5, 6]);
    assert_eq!(log.0, vec!["1 c"]);
}

#[test]
fn start_cases() {
    let mut t = ChannelTable::new(Limits {
        max_subscribers: 100,
        ..limits()
    });
    let mut log = Log::default();
    t.publish("c", &c("a"), &mut log.sink()).expect("room");
    t.publish("c", &c("b"), &mut log.sink()).expect("room");
    let start = |t: &mut ChannelTable, seq| t.subscribe("c", "", seq, 0, false, &mut |_| {}).expect("ok").start;
    assert!(matches!(start(&mut t, 0), Start::NextSeq(3)));
    assert!(matches!(start(&mut t, 100), Start::NextSeq(3)));
    assert!(matches!(start(&mut t, 3), Start::Wait(3)));
    assert_eq!(seqs(&start(&mut t, 2)), vec![2]);
    assert_eq!(seqs(&start(&mut t, -5)), vec![1, 2]);
    t.clear("c");
    assert!(matches!(start(&mut t, 1), Start::Wait(1)));
}

#[test]
fn seq_wraps_as_i32() {
    let mut t = ChannelTable::new(limits());
    t.publish("c", &c("a"), &mut |_| {}).expect("room");
    let idx = t.find("c").expect("exists") as usize;
    t.slots[idx].seq_next = i32::MAX;
    assert_eq!(t.publish("c", &c("a"), &mut |_| {}), Ok(i32::MAX));
    assert_eq!(t.publish("c", &c("b"), &mut |_| {}), Ok(i32::MIN));
    // A client at i32::MAX is behind i32::MIN + 1, not ahead.
    let s = t.subscribe("c", "", i32::MAX, 0, false, &mut |_| {}).expect("ok");
    assert_eq!(seqs(&s.start), vec![i32::MAX, i32::MIN]);
}

#[test]
fn limits_refuse_newcomers() {
    let mut t = ChannelTable::new(limits());
    for name in ["a", "b", "c", "d"] {
        t.publish(name, &c(""), &mut |_| {}).expect("room");
    }
    assert_eq!(t.publish("e", &c(""), &mut |_| {}), Err(TooManyChannels));
    assert_eq!(
        t.subscribe("e", "", 0, 0, false, &mut |_| {}).err(),
        Some(SubscribeError::TooManyChannels)
    );
    t.subscribe("a", "", 0, 0, false, &mut |_| {}).expect("first");
    t.subscribe("a", "", 0, 1, false, &mut |_| {}).expect("second");
    assert_eq!(
        t.subscribe("a", "", 0, 0, false, &mut |_| {}).err(),
        Some(SubscribeError::TooManySubscribers)
    );
    assert_eq!(t.subscribers_of("a"), 2);
    assert_eq!(t.subscribers(), 2);
}

#[test]
fn token_mode() {
    let mut t = ChannelTable::new(Limits {
        token_auth: true,
        ..limits()
    });
    assert_eq!(
        t.subscribe("c", "", 0, 0, false, &mut |_| {}).err(),
        Some(SubscribeError::TokenError)
    );
    let signed = t.sign("c", 0, &mut |_| {}).expect("room");
    assert_eq!(signed.token.len(), 32);
    assert_eq!(signed.expires, 4);
    assert_eq!(t.sign("c", 100, &mut |_| {}).expect("room").token, signed.token);
    assert_eq!(
        t.subscribe("c", "bad", 0, 0, false, &mut |_| {}).err(),
        Some(SubscribeError::TokenError)
    );
    t.subscribe("c", &signed.token, 0, 0, false, &mut |_| {})
        .expect("valid token");
    // A channel created by pub has a token only once signed.
    t.publish("p", &c(""), &mut |_| {}).expect("room");
    assert_eq!(
        t.subscribe("p", "", 0, 0, false, &mut |_| {}).err(),
        Some(SubscribeError::TokenError)
    );
    // After close, the old token no longer works and a new one is issued.
    t.close("c", &mut |_| {});
    assert_eq!(
        t.subscribe("c", &signed.token, 0, 0, false, &mut |_| {}).err(),
        Some(SubscribeError::TokenError)
    );
    assert_ne!(t.sign("c", 0, &mut |_| {}).expect("room").token, signed.token);
}

#[test]
fn deliveries_go_to_the_workers_holding_subscribers() {
    let mut t = ChannelTable::new(limits());
    let mut log = Log::default();
    let a = t.subscribe("c", "", 0, 0, false, &mut log.sink()).expect("ok").id;
    t.subscribe("c", "", 0, 3, false, &mut log.sink()).expect("ok");
    t.publish("c", &c("hi"), &mut log.sink()).expect("room");
    t.unsubscribe(a, 1, 0, true);
    t.publish("c", &c("yo"), &mut log.sink()).expect("room");
    assert_eq!(log.0, vec!["1 c", "deliver 9 1 hi", "deliver 8 2 yo"]);
}

#[test]
fn a_long_poll_answered_at_once_is_not_counted() {
    let mut t = ChannelTable::new(limits());
    t.publish("c", &c("x"), &mut |_| {}).expect("room");
    // seq 0: next_seq at once; seq 1: the replay; neither waits.
    for seq in [0, 1] {
        let s = t.subscribe("c", "", seq, 2, true, &mut |_| {}).expect("ok");
        assert!(!s.counted, "seq {seq}");
    }
    assert_eq!((t.subscribers_of("c"), t.subscribers()), (0, 0));
    let mut log = Log::default();
    t.publish("c", &c("y"), &mut log.sink()).expect("room");
    assert_eq!(log.0, Vec::<String>::new(), "no worker holds a subscriber");
    // seq 3 waits for the next message: counted, and its worker is told.
    let s = t.subscribe("c", "", 3, 2, true, &mut |_| {}).expect("ok");
    assert_eq!((s.start, s.counted), (Start::Wait(3), true));
    t.publish("c", &c("z"), &mut log.sink()).expect("room");
    assert_eq!(log.0, vec!["deliver 4 3 z"]);
}

#[test]
fn broadcast_takes_a_seq_in_every_channel_and_shares_its_content() {
    let mut t = ChannelTable::new(limits());
    t.publish("a", &c("x"), &mut |_| {}).expect("room");
    t.sign("b", 0, &mut |_| {}).expect("room");
    t.subscribe("b", "", 0, 5, false, &mut |_| {}).expect("ok");
    let content = c("B\\\"");
    let mut log = Log::default();
    assert_eq!(t.broadcast(&content, &mut log.sink()), 2);
    // Only b has a subscriber (on worker 5); a took its seq all the same.
    assert_eq!(log.0, vec!["broadcast 32 1"]);
    let s = t.subscribe("a", "", 1, 0, false, &mut |_| {}).expect("ok");
    let Start::Replay(v) = s.start else {
        panic!("replay expected")
    };
    assert_eq!(v[1].seq, 2);
    assert_eq!(v[1].kind, Kind::Broadcast);
    assert!(Arc::ptr_eq(&v[1].content, &content), "stored once, shared");
    // Two histories and the replay hold it, besides `content` itself.
    assert_eq!(Arc::strong_count(&content), 4);
    assert!(matches!(
        t.subscribe("b", "", 0, 0, false, &mut |_| {}).expect("ok").start,
        Start::NextSeq(2)
    ));
}

#[test]
fn idle_expiry_and_presence_follow_the_tick() {
    let mut t = ChannelTable::new(limits());
    let mut log = Log::default();
    t.publish("p", &c(""), &mut log.sink()).expect("room"); // idle = 4
    let id = t.subscribe("s", "", 0, 0, false, &mut log.sink()).expect("ok").id;
    assert_eq!(log.0, vec!["1 p", "1 s"], "online when created");
    // Every channel is announced once in every channel_timeout (4) ticks.
    for round in 0..3 {
        log.0.clear();
        for _ in 0..4 {
            t.tick(&mut log.sink());
        }
        if round == 0 {
            // p's idle time ran out at the fourth tick's end: still there.
            assert!(t.lookup("p").is_some());
        }
        let mut got = log.0.clone();
        got.sort();
        let want: Vec<&str> = if round == 0 { vec!["1 p", "1 s"] } else { vec!["1 s"] };
        assert!(
            got.iter()
                .map(String::as_str)
                .filter(|l| l.starts_with('1'))
                .eq(want.iter().copied()),
            "round {round}: {got:?}"
        );
        if round == 1 {
            assert!(log.0.contains(&"0 p".to_string()), "p expired in round 1: {:?}", log.0);
        }
    }
    assert!(t.lookup("p").is_none());
    // A channel with a subscriber never expires; after it leaves, it lives channel_timeout + 1 ticks.
    for _ in 0..10 {
        t.tick(&mut |_| {});
    }
    assert!(t.lookup("s").is_some());
    t.unsubscribe(id, 1, 0, true);
    for _ in 0..4 {
        t.tick(&mut |_| {});
    }
    assert!(t.lookup("s").is_some());
    t.tick(&mut |_| {});
    assert!(t.lookup("s").is_none());
    assert_eq!(t.channels(), 0);
}

#[test]
fn periodic_presence_is_spread_over_the_period() {
    let mut t = ChannelTable::new(Limits {
        max_channels: 1000,
        channel_timeout: 10,
        ..limits()
    });
    for i in 0..100 {
        t.subscribe(&format!("c{i}"), "", 0, 0, false, &mut |_| {}).expect("ok");
    }
    let mut per_tick = Vec::new();
    for _ in 0..10 {
        let mut n = 0;
        t.tick(&mut |notice| n += usize::from(matches!(notice, Notice::Online(_))));
        per_tick.push(n);
    }
    // 100 channels created together: 10 announced per tick, not 100 at once.
    assert_eq!(per_tick, vec![10; 10]);
}

#[test]
fn sign_sets_idle_and_reports_oldest_seq() {
    let mut t = ChannelTable::new(limits());
    for _ in 0..5 {
        t.publish("c", &c(""), &mut |_| {}).expect("room");
    }
    // Five publishes with size 3 are trimmed to seqs 3..=5 at the fifth; the
    // oldest available seq counts at most channel_buffer_size of them.
    let signed = t.sign("c", 1, &mut |_| {}).expect("room");
    assert_eq!(signed.seq, 6 - 3);
    t.publish("c", &c(""), &mut |_| {}).expect("room");
    assert_eq!(t.sign("c", 1, &mut |_| {}).expect("room").seq, 7 - 3);
    // expires = 1: alive after one tick, freed by the second.
    t.tick(&mut |_| {});
    assert!(t.lookup("c").is_some());
    t.tick(&mut |_| {});
    assert!(t.lookup("c").is_none());
}

#[test]
fn close_notifies_then_frees_and_recreation_restarts_seq() {
    let mut t = ChannelTable::new(limits());
    let mut log = Log::default();
    t.subscribe("c", "", 0, 1, false, &mut log.sink()).expect("ok");
    t.publish("c", &c("x"), &mut log.sink()).expect("room");
    assert_eq!(t.close("c", &mut log.sink()), Some(2));
    assert_eq!(t.close("c", &mut log.sink()), None);
    assert_eq!(&log.0[2..], ["close 2 2", "0 c"]);
    assert_eq!(t.subscribers(), 0);
    assert_eq!(t.publish("c", &c("x"), &mut |_| {}), Ok(1));
}

#[test]
fn stale_ids_are_ignored_after_slot_reuse() {
    let mut t = ChannelTable::new(limits());
    let old = t.subscribe("c", "", 0, 0, false, &mut |_| {}).expect("ok").id;
    t.close("c", &mut |_| {});
    let new = t.subscribe("d", "", 0, 0, false, &mut |_| {}).expect("ok").id;
    assert_ne!(old.key(), new.key());
    t.unsubscribe(old, 1, 0, true);
    assert_eq!(t.subscribers_of("d"), 1);
}

#[test]
fn a_slot_stays_small() {
    // A channel without history or token costs this much in the table
    // (plus its name and an entry of the name index).
    assert_eq!(std::mem::size_of::<Slot>(), 56);
}

#[test]
fn names_are_found_after_many_creations_and_frees() {
    let mut t = ChannelTable::new(Limits {
        max_channels: 10_000,
        ..limits()
    });
    for i in 0..5_000 {
        t.publish(&format!("c{i}"), &c("x"), &mut |_| {}).expect("room");
    }
    for i in (0..5_000).step_by(2) {
        assert!(t.close(&format!("c{i}"), &mut |_| {}).is_some());
    }
    for i in 0..5_000 {
        let live = i % 2 == 1;
        assert_eq!(t.lookup(&format!("c{i}")).is_some(), live, "c{i}");
    }
    assert_eq!(t.channels(), 2_500);
    // Freed slots are reused with fresh generations.
    let again = t.subscribe("c0", "", 0, 1, false, &mut |_| {}).expect("ok").id;
    assert_eq!(t.lookup("c0"), Some(again));
    assert_eq!(
        t.publish("c0", &c("y"), &mut |_| {}),
        Ok(1),
        "a recreated channel restarts at 1"
    );
}

fn cluster_table() -> ChannelTable {
    ChannelTable::new(Limits {
        max_subscribers: 100,
        cluster: true,
        ..limits()
    })
}

fn m(seq: i32, content: &str) -> Message {
    Message {
        seq,
        kind: Kind::Data,
        content: c(content),
    }
}

const E1: EpochBytes = *b"aaaaaaaaaaaaaaaa";
const E2: EpochBytes = *b"bbbbbbbbbbbbbbbb";

#[test]
fn a_cluster_channel_syncs_before_its_subscribers_start() {
    let mut t = cluster_table();
    let mut log = Log::default();
    let s = t.subscribe("c", "", 0, 1, false, &mut log.sink()).expect("ok");
    assert_eq!(s.start, Start::Pending(0), "waits for the sync");
    assert_eq!(log.0, vec!["1 c", "join c"]);
    // A message arrives before the history read lands: buffered.
    assert_eq!(t.remote_message("c", E1, m(4, "d"), &mut log.sink()), Arrival::Buffered);
    assert_eq!(t.remote_confirmed("c"), Some(None), "a new copy reads all history");
    // Redis had seqs 2 and 3 (and 4 arrived by PUB/SUB meanwhile).
    let done = t.remote_synced("c", Some(E1), 4, vec![m(2, "b"), m(3, "c"), m(4, "d")], &mut log.sink());
    assert_eq!(
        done,
        Synced {
            held: true,
            ..Synced::default()
        }
    );
    assert_eq!(
        log.0.last().map(String::as_str),
        Some("synced 2 5 [2,3,4]"),
        "history merged with the buffer"
    );
    // Live from now on: the next seq is delivered, older ones are duplicates.
    log.0.clear();
    assert_eq!(
        t.remote_message("c", E1, m(5, "e"), &mut log.sink()),
        Arrival::Delivered
    );
    assert_eq!(
        t.remote_message("c", E1, m(5, "e"), &mut log.sink()),
        Arrival::Duplicate
    );
    assert_eq!(
        t.remote_message("c", E1, m(8, "h"), &mut log.sink()),
        Arrival::Gap { missed: 2 }
    );
    assert_eq!(log.0, vec!["deliver 2 5 e", "deliver 2 8 h"]);
    // New subscribers start from the local copy, with no Redis round trip.
    let again = t.subscribe("c", "", 5, 0, false, &mut |_| {}).expect("ok");
    assert_eq!(again.start.seqs(), vec![5, 8]);
}

#[test]
fn a_resync_fills_what_was_missed_in_order_and_a_new_epoch_resets() {
    let mut t = cluster_table();
    t.subscribe("c", "", 0, 0, false, &mut |_| {}).expect("ok");
    t.remote_confirmed("c");
    t.remote_synced("c", Some(E1), 2, vec![m(1, "a"), m(2, "b")], &mut |_| {});
    // Redis went away and came back: confirmed again, reads after seq 2.
    assert_eq!(t.remote_confirmed("c"), Some(Some(2)));
    let mut log = Log::default();
    assert_eq!(t.remote_message("c", E1, m(5, "e"), &mut log.sink()), Arrival::Buffered);
    let done = t.remote_synced("c", Some(E1), 5, vec![m(3, "c"), m(4, "d"), m(5, "e")], &mut log.sink());
    assert_eq!(done.filled, 3);
    assert_eq!(done.missed, 0);
    assert_eq!(log.0, vec!["deliver 1 3 c", "deliver 1 4 d", "deliver 1 5 e"]);
    // Redis restarted without its data: a new epoch. Subscribers are reset
    // to where the new channel starts and get what it has.
    assert_eq!(t.remote_confirmed("c"), Some(Some(5)));
    let mut log = Log::default();
    let done = t.remote_synced("c", Some(E2), 1, vec![m(1, "new")], &mut log.sink());
    assert!(done.reset);
    assert_eq!(log.0, vec!["reset 1 1", "deliver 1 1 new"]);
    // ... and a message of a new epoch while live does the same.
    let mut log = Log::default();
    assert_eq!(
        t.remote_message("c", E1, m(9, "old epoch back"), &mut log.sink()),
        Arrival::Reset
    );
    assert_eq!(log.0, vec!["reset 1 9", "deliver 1 9 old epoch back"]);
}

#[test]
fn cluster_closes_and_frees_leave_redis() {
    let mut t = cluster_table();
    let mut log = Log::default();
    t.subscribe("c", "", 0, 3, false, &mut log.sink()).expect("ok");
    assert!(t.remote_close("c", 7, &mut log.sink()));
    assert_eq!(&log.0[2..], ["close 8 7", "0 c", "leave c"]);
    assert!(!t.remote_close("c", 7, &mut |_| {}));
    assert_eq!(t.remote_message("c", E1, m(1, "x"), &mut |_| {}), Arrival::NotHeld);
    let mut held = Vec::new();
    t.subscribe("d", "", 0, 0, false, &mut |_| {}).expect("ok");
    t.held(&mut |name, left| held.push((name.to_string(), left)));
    assert_eq!(held, [("d".to_string(), 4)]);
}

impl Start {
    fn seqs(&self) -> Vec<i32> {
        seqs(self)
    }
}

#[test]
fn new_limits_refuse_what_comes_next_and_keep_what_is_there() {
    let mut t = ChannelTable::new(limits());
    let mut log = Log::default();
    for name in ["a", "b", "c"] {
        t.subscribe(name, "", 0, 0, false, &mut log.sink()).expect("room");
    }
    t.subscribe("a", "", 0, 0, false, &mut log.sink()).expect("second of a");
    t.set_limits(Limits {
        max_channels: 2,
        max_subscribers: 1,
        ..limits()
    });
    assert_eq!(t.channels(), 3, "nothing is freed");
    assert_eq!(t.subscribers_of("a"), 2, "nobody is dropped");
    assert_eq!(t.publish("d", &c("x"), &mut log.sink()), Err(TooManyChannels));
    assert_eq!(
        t.subscribe("b", "", 0, 0, false, &mut log.sink()).map(|_| ()),
        Err(SubscribeError::TooManySubscribers)
    );
    t.set_limits(limits());
    assert_eq!(t.publish("d", &c("x"), &mut log.sink()), Ok(1), "room again");
    t.subscribe("b", "", 0, 0, false, &mut log.sink()).expect("room again");
}

#[test]
fn a_smaller_history_size_trims_every_history_at_once() {
    let mut t = ChannelTable::new(Limits {
        buffer_size: 6,
        ..limits()
    });
    let mut log = Log::default();
    for i in 1..=8 {
        t.publish("h", &c("x"), &mut log.sink()).expect("room");
        if i <= 2 {
            t.publish("short", &c("y"), &mut log.sink()).expect("room");
        }
    }
    let held = |t: &ChannelTable, name: &str| -> Vec<i32> {
        t.history(name).map_or(vec![], |h| h.iter().map(|m| m.seq).collect())
    };
    assert_eq!(held(&t, "h"), (1..=8).collect::<Vec<_>>());
    t.set_limits(Limits {
        buffer_size: 3,
        ..limits()
    });
    assert_eq!(held(&t, "h"), vec![6, 7, 8], "the newest three");
    assert_eq!(held(&t, "short"), vec![1, 2], "already within the size");
    assert!(t.history("h").is_some_and(|h| h.capacity() <= 4), "room given back");
    let s = t.subscribe("h", "", 1, 0, false, &mut log.sink()).expect("accepted");
    assert_eq!(seqs(&s.start), vec![6, 7, 8], "replay is contiguous");
    t.set_limits(Limits {
        buffer_size: 0,
        ..limits()
    });
    assert!(t.history("h").is_none(), "size 0 keeps nothing");
    assert_eq!(t.publish("h", &c("x"), &mut log.sink()), Ok(9), "seqs go on");
    assert!(t.history("h").is_none());
    t.set_limits(limits());
    t.publish("h", &c("x"), &mut log.sink()).expect("room");
    assert_eq!(held(&t, "h"), vec![10], "a larger size keeps again");
}

#[test]
fn check_token_is_the_subscribe_rule_without_subscribing() {
    let mut t = ChannelTable::new(Limits {
        token_auth: true,
        ..limits()
    });
    assert_eq!(
        t.check_token("c", ""),
        Err(SubscribeError::TokenError),
        "no such channel"
    );
    let signed = t.sign("c", 0, &mut |_| {}).expect("room");
    assert_eq!(t.check_token("c", "bad"), Err(SubscribeError::TokenError));
    assert_eq!(t.check_token("c", &signed.token), Ok(()));
    assert_eq!((t.subscribers(), t.subscribers_of("c")), (0, 0));
    let open = ChannelTable::new(limits());
    assert_eq!(open.check_token("anything", ""), Ok(()), "not token mode");
    assert_eq!(open.channels(), 0);
}

#[test]
fn a_seq_a_little_ahead_of_a_cluster_copy_waits_for_it() {
    let mut t = cluster_table();
    t.subscribe("c", "", 0, 0, false, &mut |_| {}).expect("ok");
    t.remote_confirmed("c");
    t.remote_synced("c", Some(E1), 6, vec![m(5, "e"), m(6, "f")], &mut |_| {});
    // Another node already delivered 7 (this copy will get it in a moment):
    // a client resuming from 8 waits for 8, it is not sent next_seq 7.
    let s = t.subscribe("c", "", 8, 0, false, &mut |_| {}).expect("ok");
    assert_eq!(s.start, Start::Wait(8));
    // Up to channel_buffer_size ahead; farther is a seq of a lost epoch:
    // icomet's next_seq.
    let size = t.limits.buffer_size as i32;
    let s = t.subscribe("c", "", 7 + size, 0, false, &mut |_| {}).expect("ok");
    assert_eq!(s.start, Start::Wait(7 + size));
    let s = t.subscribe("c", "", 8 + size, 0, false, &mut |_| {}).expect("ok");
    assert_eq!(s.start, Start::NextSeq(7));
    // At the copy's next and behind it: as on a single node.
    let s = t.subscribe("c", "", 7, 0, false, &mut |_| {}).expect("ok");
    assert_eq!(s.start, Start::Wait(7));
    let s = t.subscribe("c", "", 6, 0, false, &mut |_| {}).expect("ok");
    assert_eq!(s.start.seqs(), vec![6]);
}

#[test]
fn an_emptied_table_reserves_nothing_and_serves_again() {
    let mut t = ChannelTable::new(Limits {
        max_channels: 10_000,
        ..limits()
    });
    for i in 0..3_000 {
        t.publish(&format!("c{i}"), &c("x"), &mut |_| {}).expect("room");
    }
    for i in 0..3_000 {
        assert!(t.close(&format!("c{i}"), &mut |_| {}).is_some());
    }
    assert_eq!(t.channels(), 0);
    // A reservation made now would come from the memory the channels just
    // gave back, and keep it resident though nothing is in it.
    assert_eq!(
        (t.slots.capacity(), t.free.capacity()),
        (0, 0),
        "the arrays are released, not reserved again"
    );
    assert_eq!(t.publish("c7", &c("y"), &mut |_| {}), Ok(1));
    assert!(t.subscribe("c8", "", 1, 0, false, &mut |_| {}).is_ok());
    assert_eq!(t.channels(), 2);
}

#[test]
fn a_redis_gone_back_under_the_same_epoch_resets_from_the_first_new_message() {
    let mut t = cluster_table();
    t.subscribe("c", "", 0, 0, false, &mut |_| {}).expect("ok");
    t.remote_confirmed("c");
    let kept = vec![m(1, "a"), m(2, "b"), m(3, "c"), m(4, "d")];
    t.remote_synced("c", Some(E1), 4, kept, &mut |_| {});
    // Restored from a snapshot taken at seq 2, and seq 3 given again to a
    // new message: the whole history is read again (see link::sync).
    t.remote_confirmed("c");
    let mut log = Log::default();
    let done = t.remote_synced(
        "c",
        Some(E1),
        3,
        vec![m(1, "a"), m(2, "b"), m(3, "new")],
        &mut log.sink(),
    );
    assert!(done.reset, "counted as a reset");
    assert_eq!(log.0, vec!["reset 1 3", "deliver 1 3 new"]);
    // Live messages follow from Redis's seqs, not from the old copy's.
    let mut log = Log::default();
    assert_eq!(
        t.remote_message("c", E1, m(4, "next"), &mut log.sink()),
        Arrival::Delivered
    );
    assert_eq!(log.0, vec!["deliver 1 4 next"]);
    // Nothing new yet (the snapshot's seq is Redis's top): resume there.
    t.remote_confirmed("c");
    let mut log = Log::default();
    let done = t.remote_synced("c", Some(E1), 2, vec![m(1, "a"), m(2, "b")], &mut log.sink());
    assert!(done.reset);
    assert_eq!(log.0, vec!["reset 1 3"]);
}
