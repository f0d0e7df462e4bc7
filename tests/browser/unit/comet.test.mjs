// Pure logic of web/comet.js: seq bookkeeping, backoff, URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { SeqTracker, backoffDelay, transportUrl, withParams, seqNext, seqDiff } = require('../../../web/comet.js');

test('seqs wrap like the server: i32', () => {
  assert.equal(seqNext(5), 6);
  assert.equal(seqNext(2147483647), -2147483648);
  assert.equal(seqDiff(-2147483648, 2147483647), 1);
  assert.equal(seqDiff(3, 5), -2);
});

test('a new subscription takes next_seq and then delivers in order', () => {
  const s = new SeqTracker();
  assert.equal(s.nextSeq(7), 'ok');
  assert.equal(s.next, 7);
  assert.equal(s.message(7), 'deliver');
  assert.equal(s.message(8), 'deliver');
  assert.equal(s.next, 9);
});

test('replayed messages already delivered are duplicates', () => {
  const s = new SeqTracker();
  s.nextSeq(1);
  for (const seq of [1, 2, 3]) {
    assert.equal(s.message(seq), 'deliver');
  }
  // A reconnect that replays from an older seq (or a stale reply).
  assert.equal(s.message(2), 'duplicate');
  assert.equal(s.message(3), 'duplicate');
  assert.equal(s.message(4), 'deliver');
  assert.equal(s.next, 5);
});

test('a gap is delivered and reported', () => {
  const s = new SeqTracker();
  s.nextSeq(1);
  assert.equal(s.message(4), 'gap');
  assert.equal(s.next, 5);
});

test('next_seq after a broadcast keeps the position', () => {
  const s = new SeqTracker();
  s.nextSeq(3);
  assert.equal(s.message(3), 'deliver');
  assert.equal(s.nextSeq(4), 'ok');
  assert.equal(s.next, 4);
});

test('next_seq behind us means the server restarted: start again from 1', () => {
  const s = new SeqTracker();
  s.nextSeq(1);
  for (const seq of [1, 2, 3, 4]) {
    s.message(seq);
  }
  assert.equal(s.nextSeq(2), 'restart');
  assert.equal(s.next, 1);
  assert.equal(s.message(1), 'deliver');
  assert.equal(s.message(2), 'deliver');
});

test('next_seq across the wrap is not a restart', () => {
  const s = new SeqTracker();
  s.nextSeq(2147483647);
  assert.equal(s.message(2147483647), 'deliver');
  assert.equal(s.next, -2147483648);
  assert.equal(s.nextSeq(-2147483648), 'ok');
  assert.equal(s.message(-2147483648), 'deliver');
});

test('long-poll noops must echo the current counter; stream noops are taken as they come', () => {
  const s = new SeqTracker();
  assert.equal(s.heartbeat(0, true), true);
  assert.equal(s.noop, 1);
  assert.equal(s.heartbeat(0, true), false);
  assert.equal(s.noop, 1);
  assert.equal(s.heartbeat(5, false), true);
  assert.equal(s.noop, 6);
});

test('backoff doubles up to the cap, with jitter in the upper half', () => {
  const lo = () => 0;
  const hi = () => 0.999999;
  assert.equal(backoffDelay(0, 500, 30000, lo), 250);
  assert.ok(backoffDelay(0, 500, 30000, hi) < 500);
  assert.equal(backoffDelay(3, 500, 30000, lo), 2000);
  assert.equal(backoffDelay(10, 500, 30000, lo), 15000);
  assert.equal(backoffDelay(1000, 500, 30000, lo), 15000);
  const seen = new Set();
  for (let i = 0; i < 50; i++) {
    const d = backoffDelay(2, 500, 30000);
    assert.ok(d >= 1000 && d <= 2000, String(d));
    seen.add(d);
  }
  assert.ok(seen.size > 1, 'jitter varies');
});

test('transport URLs replace the last path segment', () => {
  assert.equal(transportUrl('http://h:8100/sub', 'sse'), 'http://h:8100/sse');
  assert.equal(transportUrl('http://h:8100/icomet/sub?a=1', 'iframe'), 'http://h:8100/icomet/iframe?a=1');
  assert.equal(transportUrl('http://h:8100/poll', 'poll'), 'http://h:8100/poll');
  assert.equal(transportUrl('http://h:8100/subscribe', 'sse'), null);
  assert.equal(transportUrl('http://h:8100/subscribe', 'poll'), 'http://h:8100/subscribe');
});

test('parameters are URL-encoded', () => {
  assert.equal(withParams('/sub', { cname: 'a b&c', seq: 3 }), '/sub?cname=a%20b%26c&seq=3');
  assert.equal(withParams('/sub?x=1', { token: 't' }), '/sub?x=1&token=t');
});
