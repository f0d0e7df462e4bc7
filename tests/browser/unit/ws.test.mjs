// web/comet.js over WebSocket, without a browser: the transport choice,
// URLs and close codes, the shared socket's bookkeeping (SocketBook), and
// iComet and iComet.Socket driven through a scripted WebSocket with node's
// mocked timers (backoff, the watchdog), so every step is exact.
import { test, mock, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { iComet, Socket, SocketBook, chooseTransport, wsUrl, wsCloseAction, WS_FALLBACK_FAILURES } = require(
  '../../../web/comet.js'
);

const SUB_URL = 'http://h:1/sub';

/** A WebSocket the test plays the server of: it sees what the client sends. */
class FakeWs {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeWs.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.closed = true;
  }
  // The server's side.
  accept() {
    this.onopen?.();
  }
  deliver(type, cname, seq, content = '') {
    this.onmessage?.({ data: JSON.stringify({ type, cname, seq, content }) });
  }
  end(code) {
    this.onclose?.({ code, reason: '' });
  }
  /** What was sent since the last call. */
  take() {
    const out = this.sent;
    this.sent = [];
    return out;
  }
}

class FakeEventSource {
  static all = [];
  constructor(url) {
    this.url = url;
    FakeEventSource.all.push(this);
  }
  close() {}
}

/** The newest WebSocket opened. */
const last = () => FakeWs.all[FakeWs.all.length - 1];

const live = [];
beforeEach(() => {
  FakeWs.all = [];
  FakeEventSource.all = [];
  globalThis.WebSocket = FakeWs;
  globalThis.EventSource = FakeEventSource;
  // comet.js logs every decision at debug level.
  console.debug = () => {};
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
});
afterEach(() => {
  for (const c of live.splice(0)) {
    c.stop();
  }
  mock.timers.reset();
  delete globalThis.WebSocket;
  delete globalThis.EventSource;
});

/** A socket whose channels record (channel, type, content, seq). */
function socketWithLog(extra = {}) {
  const got = [];
  const s = new Socket({ subUrl: SUB_URL, backoff_ms: 100, backoff_max_ms: 800, ...extra });
  const sub = (name, options) => {
    const record = (content, type, msg) => got.push([name, type, content, msg.seq]);
    const c = s.subscribe(name, record, { error: record, ...options });
    live.push(c);
    return c;
  };
  return { s, got, sub };
}

/** Lets every backoff up to the socket's maximum run out. */
const afterBackoff = () => mock.timers.tick(4000);

test('WebSocket first, then SSE, then long polling; the page can turn WebSocket off', () => {
  const both = { WebSocket: 1, EventSource: 1 };
  assert.equal(chooseTransport({}, both), 'ws');
  assert.equal(chooseTransport({ websocket: false }, both), 'sse');
  assert.equal(chooseTransport({}, { EventSource: 1 }), 'sse');
  assert.equal(chooseTransport({}, {}), 'poll');
  assert.equal(chooseTransport({ websocket: false }, { WebSocket: 1 }), 'poll');
});

test('WebSocket URLs come from the subscribe URL, relative ones from the page', () => {
  assert.equal(wsUrl('http://h:8100/ws?a=1'), 'ws://h:8100/ws?a=1');
  assert.equal(wsUrl('HTTPS://h/comet/ws'), 'wss://h/comet/ws');
  assert.equal(wsUrl('/ws', 'https://example.org/demo/page.html'), 'wss://example.org/ws');
  assert.equal(wsUrl('//other:81/ws', 'http://example.org/'), 'ws://other:81/ws');
  assert.equal(wsUrl('ws://h/ws'), 'ws://h/ws');
});

test('close codes 4401 and 4429 are refusals, every other one a reconnect', () => {
  assert.equal(wsCloseAction(4401), '401');
  assert.equal(wsCloseAction(4429), '429');
  for (const code of [1000, 1001, 1002, 1006, 1008, 1013, 4000]) {
    assert.equal(wsCloseAction(code), 'retry', String(code));
  }
});

test('SocketBook: frames of an unsubscribed channel are dropped up to the answer', () => {
  const book = new SocketBook();
  const a = book.add('a', 'client-a');
  assert.equal(book.remove(a), false, 'nothing sent: nothing to unsubscribe');
  const a2 = book.add('a', 'client-a');
  book.sent(a2);
  assert.equal(book.route({ type: 'next_seq', cname: 'a', seq: 1 }), a2);
  assert.equal(a2.state, 'held');
  assert.equal(book.route({ type: 'data', cname: 'zz', seq: 1 }), null, 'not registered');
  assert.equal(book.remove(a2), true);
  const a3 = book.add('a', 'client-a');
  book.sent(a3);
  // The old subscription's frames, then the answer to the unsub, then the new one's.
  assert.equal(book.route({ type: 'data', cname: 'a', seq: 7 }), null);
  assert.equal(book.route({ type: 'unsub', cname: 'a', seq: 8 }), null);
  assert.equal(book.route({ type: 'data', cname: 'a', seq: 1 }), a3);
  // A 400 (the server no longer held it) answers an unsub as well, and
  // two unsubs in a row need two answers.
  assert.equal(book.remove(a3), true);
  const a4 = book.add('a', 'client-a');
  book.sent(a4);
  assert.equal(book.remove(a4), true);
  book.add('a', 'client-a');
  assert.equal(book.route({ type: '400', cname: 'a', seq: 0 }), null);
  assert.equal(book.route({ type: 'next_seq', cname: 'a', seq: 1 }), null);
  assert.equal(book.route({ type: 'unsub', cname: 'a', seq: 1 }), null);
  assert.equal(book.route({ type: 'next_seq', cname: 'a', seq: 1 }).cname, 'a');
});

test('SocketBook: refusals and closes leave nothing to unsubscribe; a new socket holds nothing', () => {
  const book = new SocketBook();
  for (const type of ['401', '429', 'close']) {
    const r = book.add(type, null);
    book.sent(r);
    assert.equal(book.route({ type, cname: type, seq: 0 }), r);
    assert.equal(r.state, 'none');
    assert.equal(book.remove(r), false, type);
  }
  const b = book.add('b', null);
  book.sent(b);
  const c = book.add('c', null);
  book.sent(c);
  book.remove(c);
  book.reset();
  assert.equal(b.state, 'none');
  assert.equal(book.size(), 1);
  book.add('c', null);
  assert.equal(book.route({ type: 'data', cname: 'c', seq: 1 }).cname, 'c', 'no answer awaited any more');
});

test('two channels share one socket, each with its own seq and token', () => {
  const { s, got, sub } = socketWithLog();
  const a = sub('a');
  const b = sub('b');
  b.token = 'tok-b';
  assert.equal(FakeWs.all.length, 1);
  const ws = last();
  assert.equal(ws.url, 'ws://h:1/ws?noop=0');
  ws.accept();
  assert.deepEqual(ws.take(), [
    { type: 'sub', cname: 'a', seq: 0 },
    { type: 'sub', cname: 'b', seq: 0, token: 'tok-b' }
  ]);
  ws.deliver('next_seq', 'a', 1);
  ws.deliver('data', 'b', 4, 'old b');
  ws.deliver('data', 'a', 1, 'a1');
  ws.deliver('broadcast', 'b', 5, 'all');
  ws.deliver('next_seq', 'b', 6);
  ws.deliver('noop', 'a', 3);
  assert.deepEqual(got, [
    ['b', 'data', 'old b', 4],
    ['a', 'data', 'a1', 1],
    ['b', 'broadcast', 'all', 5]
  ]);
  assert.deepEqual([a.seqs.next, b.seqs.next, s.noop], [2, 6, 4]);
  assert.deepEqual(s.channels(), ['a', 'b']);
  assert.throws(() => s.subscribe('a', () => {}), /already subscribed on this socket/);
});

test('a dropped socket comes back with one sub per channel from its next seq', () => {
  const { s, got, sub } = socketWithLog();
  sub('a');
  sub('b');
  let ws = last();
  ws.accept();
  ws.deliver('data', 'a', 1, 'a1');
  ws.deliver('data', 'b', 9, 'b9');
  ws.deliver('noop', 'a', 0);
  // A lost connection, then a server shutdown, then a slow-consumer close:
  // each is a reconnect after backoff, never at once.
  for (const code of [1006, 1001, 1013]) {
    ws.end(code);
    assert.equal(FakeWs.all.length, 1 + [1006, 1001, 1013].indexOf(code), 'not at once');
    afterBackoff();
    ws = last();
    assert.equal(ws.url, 'ws://h:1/ws?noop=1');
    ws.accept();
    assert.deepEqual(ws.take(), [
      { type: 'sub', cname: 'a', seq: 2 },
      { type: 'sub', cname: 'b', seq: 10 }
    ], `after ${code}`);
  }
  // What the server replays that was seen already is dropped.
  ws.deliver('data', 'a', 1, 'a1 again');
  ws.deliver('data', 'a', 2, 'a2');
  assert.deepEqual(got, [
    ['a', 'data', 'a1', 1],
    ['b', 'data', 'b9', 9],
    ['a', 'data', 'a2', 2]
  ]);
  assert.equal(s.attempt, 0, 'a message resets the backoff');
});

test('a channel behind its seq (server restarted) starts again from 1 without taking stale frames', () => {
  const { got, sub } = socketWithLog();
  sub('a');
  sub('b');
  let ws = last();
  ws.accept();
  for (const seq of [1, 2, 3]) {
    ws.deliver('data', 'a', seq, `old${seq}`);
  }
  ws.end(1001);
  afterBackoff();
  ws = last();
  ws.accept();
  assert.deepEqual(ws.take(), [
    { type: 'sub', cname: 'a', seq: 4 },
    { type: 'sub', cname: 'b', seq: 0 }
  ]);
  // The new process is at seq 2 for a: unsub, then sub from 1.
  ws.deliver('next_seq', 'a', 2);
  assert.deepEqual(ws.take(), [
    { type: 'unsub', cname: 'a' },
    { type: 'sub', cname: 'a', seq: 1 }
  ]);
  // Published before the server saw the unsub: the old subscription's, dropped.
  ws.deliver('data', 'a', 2, 'new2 early');
  ws.deliver('next_seq', 'b', 1);
  ws.deliver('unsub', 'a', 3);
  ws.deliver('data', 'a', 1, 'new1');
  ws.deliver('data', 'a', 2, 'new2');
  assert.deepEqual(got.slice(3), [
    ['a', 'data', 'new1', 1],
    ['a', 'data', 'new2', 2]
  ]);
});

test('unsubscribe sends unsub; the socket closes after its last channel and stays closed', () => {
  const { s, got, sub } = socketWithLog();
  sub('a');
  const b = sub('b');
  const ws = last();
  ws.accept();
  ws.take();
  ws.deliver('next_seq', 'a', 1);
  ws.deliver('next_seq', 'b', 1);
  s.unsubscribe('a');
  assert.deepEqual(ws.take(), [{ type: 'unsub', cname: 'a' }]);
  ws.deliver('data', 'a', 1, 'after unsub');
  ws.deliver('unsub', 'a', 2);
  ws.deliver('data', 'b', 1, 'b1');
  assert.deepEqual(got, [['b', 'data', 'b1', 1]]);
  assert.deepEqual(s.channels(), ['b']);
  b.unsub();
  assert.deepEqual(ws.take(), [{ type: 'unsub', cname: 'b' }]);
  mock.timers.tick(1);
  assert.equal(ws.closed, true);
  afterBackoff();
  assert.equal(FakeWs.all.length, 1, 'no reconnect without channels');
  // sub() again opens a new socket and resumes from the same seq.
  b.sub();
  const again = last();
  assert.notEqual(again, ws);
  again.accept();
  assert.deepEqual(again.take(), [{ type: 'sub', cname: 'b', seq: 2 }]);
});

test('refusals and closes of one channel leave the others alone', () => {
  const { s, got, sub } = socketWithLog();
  sub('locked');
  sub('full');
  sub('gone');
  sub('ok');
  const ws = last();
  ws.accept();
  ws.take();
  ws.deliver('401', 'locked', 0, 'Token error');
  ws.deliver('429', 'full', 0, 'Too many subscribers');
  ws.deliver('next_seq', 'gone', 1);
  ws.deliver('data', 'gone', 1, 'g1');
  ws.deliver('close', 'gone', 2);
  ws.deliver('next_seq', 'ok', 1);
  assert.deepEqual(got, [
    ['locked', '401', 'Token error', 0],
    ['full', '429', 'Too many subscribers', 0],
    ['gone', 'data', 'g1', 1],
    ['gone', 'close', '', 2]
  ]);
  // Without a signUrl a 401 stops that channel; nothing is unsubscribed
  // (the server holds none of them), and the socket stays.
  assert.deepEqual(s.channels(), ['full', 'gone', 'ok']);
  assert.deepEqual(ws.take(), []);
  afterBackoff();
  assert.equal(FakeWs.all.length, 1);
  assert.deepEqual(ws.take(), [
    { type: 'sub', cname: 'gone', seq: 2 },
    { type: 'sub', cname: 'full', seq: 0 }
  ]);
});

test('the channel beyond the server cap gets a WebSocket of its own', () => {
  const { s, got, sub } = socketWithLog();
  sub('a');
  const extra = sub('extra');
  const ws = last();
  ws.accept();
  ws.take();
  ws.deliver('429', 'extra', 0, 'Too many channels on this connection');
  assert.deepEqual(got, [], 'not a refusal for the page');
  assert.equal(FakeWs.all.length, 2);
  assert.equal(last().url, 'ws://h:1/ws?cname=extra&seq=0&noop=0&token=');
  assert.deepEqual(s.channels(), ['a']);
  assert.equal(extra.socket, null);
  assert.deepEqual(ws.take(), [], 'nothing to unsubscribe');
  last().onmessage({ data: '{"type":"data","cname":"extra","seq":1,"content":"own"}' });
  assert.deepEqual(got, [['extra', 'data', 'own', 1]]);
});

test('a silent socket is given up after sub_timeout and opened again', () => {
  const { sub } = socketWithLog({ sub_timeout: 3000 });
  sub('a');
  const ws = last();
  ws.accept();
  ws.deliver('next_seq', 'a', 5);
  mock.timers.tick(3000);
  assert.equal(ws.closed, false, 'at the limit: still waiting');
  mock.timers.tick(1000);
  assert.equal(ws.closed, true);
  afterBackoff();
  last().accept();
  assert.deepEqual(last().take(), [{ type: 'sub', cname: 'a', seq: 5 }]);
});

test(`a WebSocket failing ${WS_FALLBACK_FAILURES} times before any message gives way to SSE`, () => {
  const { s, sub } = socketWithLog();
  sub('a');
  sub('b');
  for (let i = 0; i < WS_FALLBACK_FAILURES; i++) {
    last().end(1006);
    afterBackoff();
  }
  assert.equal(FakeWs.all.length, WS_FALLBACK_FAILURES);
  assert.equal(s.transport, 'sse');
  assert.deepEqual(
    FakeEventSource.all.map((e) => e.url),
    ['http://h:1/sse?cname=a&seq=0&noop=0&token=', 'http://h:1/sse?cname=b&seq=0&noop=0&token=']
  );
  // A socket that worked once does not fall back: that was a restart.
  const worked = socketWithLog();
  worked.sub('c');
  last().accept();
  last().deliver('next_seq', 'c', 1);
  for (let i = 0; i < WS_FALLBACK_FAILURES + 2; i++) {
    last().end(1006);
    afterBackoff();
  }
  assert.equal(worked.s.transport, 'ws');
});

test('forced WebSocket never falls back', () => {
  const { s, sub } = socketWithLog({ transport: 'ws' });
  sub('a');
  for (let i = 0; i < WS_FALLBACK_FAILURES + 1; i++) {
    last().end(1006);
    afterBackoff();
  }
  assert.equal(s.transport, 'ws');
  assert.equal(FakeEventSource.all.length, 0);
});

test('without WebSocket a socket gives each channel its own SSE connection', () => {
  delete globalThis.WebSocket;
  const { s, sub } = socketWithLog();
  sub('a');
  sub('b');
  assert.equal(s.transport, 'sse');
  assert.equal(FakeEventSource.all.length, 2);
});

test('one channel over its own WebSocket: the URL channel, resume and refusal codes', () => {
  const got = [];
  const record = (content, type, msg) => got.push([type, content, msg.seq]);
  const c = new iComet({ channel: 'c', subUrl: SUB_URL, callback: record, error: record, backoff_ms: 100, backoff_max_ms: 800 });
  live.push(c);
  assert.equal(c.transport, 'ws');
  let ws = last();
  assert.equal(ws.url, 'ws://h:1/ws?cname=c&seq=0&noop=0&token=');
  ws.deliver('next_seq', 'c', 1);
  ws.deliver('data', 'c', 1, 'one');
  ws.deliver('noop', 'c', 0);
  ws.end(1006);
  afterBackoff();
  ws = last();
  assert.equal(ws.url, 'ws://h:1/ws?cname=c&seq=2&noop=1&token=');
  // A 429 close without its object (as a proxy might pass it): a refusal,
  // retried after four times the backoff, from the same seq.
  ws.end(4429);
  assert.deepEqual(got.at(-1), ['429', '4429 too many subscribers', 0]);
  mock.timers.tick(399);
  assert.equal(FakeWs.all.length, 2, 'not before 4 x backoff_ms');
  afterBackoff();
  assert.equal(last().url, 'ws://h:1/ws?cname=c&seq=2&noop=1&token=');
  // A 4401 without a signUrl stops the subscription.
  last().end(4401);
  assert.deepEqual(got.at(-1), ['401', '4401 token refused', 0]);
  afterBackoff();
  assert.equal(FakeWs.all.length, 3);
  assert.equal(c.stopped, true);
  assert.deepEqual(got[0], ['data', 'one', 1]);
});

test('one channel over an automatic WebSocket falls back to SSE; a forced one does not', () => {
  const auto = new iComet({ channel: 'c', subUrl: SUB_URL, backoff_ms: 100, backoff_max_ms: 800 });
  live.push(auto);
  for (let i = 0; i < WS_FALLBACK_FAILURES; i++) {
    last().end(1006);
    afterBackoff();
  }
  assert.equal(auto.transport, 'sse');
  assert.deepEqual(
    FakeEventSource.all.map((e) => e.url),
    ['http://h:1/sse?cname=c&seq=0&noop=0&token=']
  );
  const forced = new iComet({ channel: 'd', subUrl: SUB_URL, transport: 'ws', backoff_ms: 100, backoff_max_ms: 800 });
  live.push(forced);
  for (let i = 0; i < WS_FALLBACK_FAILURES + 1; i++) {
    last().end(1006);
    afterBackoff();
  }
  assert.equal(forced.transport, 'ws');
  const off = new iComet({ channel: 'e', subUrl: SUB_URL, websocket: false });
  live.push(off);
  assert.equal(off.transport, 'sse');
});
