// comet.js over WebSocket in chromium: the chat demo chooses /ws by itself
// and two pages chat through it; a page that turns WebSocket off, a browser
// without it, and a proxy that refuses upgrades all end up on SSE; 401 and
// 429 refusals (close codes 4401 and 4429) reach the page, and a 429'd page
// gets in after backoff.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Comet } from '../lib/server.mjs';
import { launch, open, eventually, shown } from '../lib/browser.mjs';

let server;
let guarded;
let browser;

before(async () => {
  server = await new Comet().start();
  guarded = await new Comet(['auth: token', 'max_subscribers_per_channel: 1']).start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  await guarded?.dispose();
});

async function stats(s = server) {
  return JSON.parse((await s.get('/stats')).text);
}

async function subscribers(cname, s = server) {
  const r = await s.get(`/info?cname=${cname}`);
  return JSON.parse(r.text).subscribers;
}

/** What a chat page shows: ["nickname: text #seq", ...]. */
function lines(page) {
  return page.$$eval('#messages li', (items) => items.map((li) => li.textContent));
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('button[type=submit]');
}

/** The chat of two pages opened by `url(name)`: four messages, both ways, in order on both. */
async function chat(url, cname, transport) {
  const alice = await open(browser, url('alice'));
  const bob = await open(browser, url('bob'));
  for (const page of [alice, bob]) {
    assert.equal(await page.textContent('#meta'), `channel ${cname} over ${transport}`);
  }
  await eventually(async () => (await subscribers(cname)) === 2, `two subscribers of ${cname}`);
  await say(alice, 'hello bob, "quoted" <b>not bold</b> é ✓');
  await eventually(async () => (await lines(bob)).length === 1, 'bob to get the first message');
  await say(bob, 'hi alice');
  await say(alice, 'how are you?');
  await say(bob, `fine over ${transport}`);
  const want = [
    'alice:hello bob, "quoted" <b>not bold</b> é ✓#1',
    'bob:hi alice#2',
    'alice:how are you?#3',
    `bob:fine over ${transport}#4`
  ];
  for (const page of [alice, bob]) {
    await eventually(
      async () => (await lines(page)).length >= want.length,
      async () => `4 messages, have ${JSON.stringify(await lines(page))}`
    );
    assert.deepEqual(await lines(page), want);
    assert.deepEqual(page.errors, []);
  }
  assert.equal(await alice.$$eval('#messages li.mine', (l) => l.length), 2);
  return [alice, bob];
}

/** The open connections per transport, without the zeros. */
function inUse(s) {
  return Object.fromEntries(Object.entries(s.connections_by_transport).filter(([, n]) => n > 0));
}

test('two pages chat over WebSocket, chosen by default', async () => {
  const cname = 'chat-ws';
  const pages = await chat((name) => server.admin(`/demo/chat.html?channel=${cname}&name=${name}`), cname, 'ws');
  // The only connections the server has are the two WebSockets.
  assert.deepEqual(inUse(await stats()), { ws: 2 });
  for (const page of pages) {
    await page.close();
  }
});

test('a page that turns WebSocket off chats over SSE', async () => {
  const cname = 'chat-nows';
  const url = (name) => server.admin(`/demo/chat.html?channel=${cname}&websocket=0&name=${name}`);
  const pages = await chat(url, cname, 'sse');
  await eventually(async () => JSON.stringify(inUse(await stats())) === '{"sse":2}', 'two SSE connections and nothing else');
  for (const page of pages) {
    await page.close();
  }
});

test('a browser without WebSocket uses SSE', async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    delete window.WebSocket;
  });
  try {
    const page = await context.newPage();
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(String(e)));
    await page.goto(server.admin('/demo/chat.html?channel=no-ws-api&name=carol'));
    assert.equal(await page.evaluate(() => typeof window.WebSocket), 'undefined');
    assert.equal(await page.textContent('#meta'), 'channel no-ws-api over sse');
    await eventually(async () => (await subscribers('no-ws-api')) === 1, 'a subscriber');
    await eventually(async () => JSON.stringify(inUse(await stats())) === '{"sse":1}', 'one SSE connection and nothing else');
    await say(page, 'over sse');
    await eventually(async () => (await lines(page)).join() === 'carol:over sse#1', 'the message back');
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});

test('through a proxy that refuses WebSocket upgrades the page falls back to SSE', async () => {
  // Passes plain requests to the front listener; drops any upgrade.
  const refused = [];
  const proxy = net.createServer((client) => {
    client.on('error', () => {});
    client.once('data', (head) => {
      if (/^upgrade:\s*websocket/im.test(head.toString('latin1'))) {
        refused.push(head.toString('latin1').split(' ')[1]);
        client.destroy();
        return;
      }
      const upstream = net.connect(server.frontPort, '127.0.0.1');
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  try {
    const port = proxy.address().port;
    const page = await open(browser, server.admin(`/demo/chat.html?channel=blocked&front_port=${port}&name=dave`));
    assert.equal(await page.textContent('#meta'), 'channel blocked over ws');
    await eventually(async () => (await subscribers('blocked')) === 1, 'a subscriber after the fallback');
    assert.deepEqual(refused, ['/ws?cname=blocked&seq=0&noop=0&token=', '/ws?cname=blocked&seq=0&noop=0&token=', '/ws?cname=blocked&seq=0&noop=0&token=']);
    await eventually(async () => JSON.stringify(inUse(await stats())) === '{"sse":1}', 'one SSE connection and nothing else');
    assert.ok(page.logs.some((l) => /WebSocket failed 3 times before any message; using sse/.test(l)), page.logs.join('\n'));
    await say(page, 'after the fallback');
    await eventually(async () => (await lines(page)).join() === 'dave:after the fallback#1', 'the message back');
    assert.deepEqual(page.errors, []);
    await page.close();
  } finally {
    await new Promise((resolve) => proxy.close(resolve));
  }
});

test('ws: a subscribe without a valid token gets 401 (close 4401) in the callback', async () => {
  const page = await open(browser, guarded.admin('/demo/ws.html?channel=locked-ws'));
  await eventually(async () => (await shown(page)).length > 0, 'a refusal on the page');
  assert.deepEqual(await shown(page), [{ cls: 'refusal', type: '401', seq: null, text: 'Token error' }]);
  // No signUrl: the page does not retry.
  assert.ok(page.logs.some((l) => /token refused; not retrying/.test(l)), page.logs.join('\n'));
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('ws: a full channel gives 429 (close 4429) in the callback, then a place after backoff', async () => {
  const cname = 'full-ws';
  const url = guarded.admin(`/demo/ws.html?channel=${cname}&sign=1&backoff_ms=100&backoff_max_ms=800`);
  const first = await open(browser, url);
  await eventually(async () => (await subscribers(cname, guarded)) === 1, `a subscriber of ${cname}`);
  await guarded.push(cname, 'for the first');
  await eventually(async () => (await shown(first)).length === 1, 'the first page to receive');

  const second = await open(browser, url);
  await eventually(async () => (await shown(second)).length > 0, 'a refusal on the second page');
  const [refusal] = await shown(second);
  assert.deepEqual(refusal, { cls: 'refusal', type: '429', seq: null, text: 'Too many subscribers' });

  await first.close();
  await eventually(
    async () => {
      await guarded.push(cname, 'for the second');
      await new Promise((r) => setTimeout(r, 200));
      return (await shown(second)).some((m) => m.text === 'for the second');
    },
    async () => `the second page to receive, have ${JSON.stringify(await shown(second))}`,
    20000
  );
  const s = await stats(guarded);
  assert.equal(s.connections_by_transport.ws, 1, JSON.stringify(s));
  assert.deepEqual(second.errors, []);
  await second.close();
});
