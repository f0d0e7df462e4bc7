// Several channels on one WebSocket (iComet.Socket, the channels.html demo)
// in chromium, against a server with token auth: each channel signs its own
// token and subscribes with a sub command on the one socket; messages of
// both arrive; leaving and joining a channel resumes it from its seq; a
// channel closed by the server comes back while the other carries on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Comet } from '../lib/server.mjs';
import { launch, open, eventually } from '../lib/browser.mjs';

let server;
let browser;

before(async () => {
  server = await new Comet(['auth: token']).start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

async function stats() {
  return JSON.parse((await server.get('/stats')).text);
}

async function subscribers(cname) {
  const r = await server.get(`/info?cname=${cname}`);
  return r.status === 200 ? JSON.parse(r.text).subscribers : 0;
}

/** What column `i` of channels.html shows: [{type, seq, text}]. */
function column(page, i) {
  return page.$$eval(`#messages-${i} li`, (items) =>
    items.map((li) => ({
      type: li.getAttribute('data-type'),
      seq: li.hasAttribute('data-seq') ? Number(li.getAttribute('data-seq')) : null,
      text: li.querySelector('.content').textContent
    }))
  );
}

/** Waits until column `i` shows exactly `want` ([type, seq, text] triples). */
async function expectColumn(page, i, want) {
  const have = async () => (await column(page, i)).map((m) => [m.type, m.seq, m.text]);
  await eventually(
    async () => (await have()).length >= want.length,
    async () => `column ${i}: ${JSON.stringify(want)}, have ${JSON.stringify(await have())}; page log:\n${page.logs.join('\n')}`
  );
  assert.deepEqual(await have(), want);
}

/** Opens channels.html on `a` and `b` and waits until the socket holds both. */
async function openBoth(a, b) {
  const page = await open(browser, server.admin(`/demo/channels.html?channels=${a},${b}&sign=1&backoff_ms=100&backoff_max_ms=800`));
  assert.equal(await page.textContent('#meta'), `channels ${a}, ${b} on one WebSocket`);
  await eventually(async () => (await subscribers(a)) === 1 && (await subscribers(b)) === 1, `subscribers of ${a} and ${b}`);
  return page;
}

test('two channels, each with its own token, on one WebSocket connection', async () => {
  const page = await openBoth('news', 'sport');
  const s = await stats();
  assert.equal(s.connections, 1, JSON.stringify(s));
  assert.equal(s.connections_by_transport.ws, 1, JSON.stringify(s));
  assert.equal(s.subscribers, 2, JSON.stringify(s));

  await server.push('news', 'n1');
  await server.push('sport', 's1');
  // Published from the page, one channel each (/push on the admin origin).
  await page.fill('#text-1', 's2 from the page');
  await page.click('[data-channel=sport] button[type=submit]');
  await expectColumn(page, 1, [
    ['data', 1, 's1'],
    ['data', 2, 's2 from the page']
  ]);
  await page.fill('#text-0', 'n2 from the page');
  await page.click('[data-channel=news] button[type=submit]');
  await expectColumn(page, 0, [
    ['data', 1, 'n1'],
    ['data', 2, 'n2 from the page']
  ]);
  // A broadcast reaches each channel, with each channel's seq.
  assert.equal((await server.get('/broadcast?content=to%20all')).status, 200);
  await expectColumn(page, 0, [
    ['data', 1, 'n1'],
    ['data', 2, 'n2 from the page'],
    ['broadcast', 3, 'to all']
  ]);
  await expectColumn(page, 1, [
    ['data', 1, 's1'],
    ['data', 2, 's2 from the page'],
    ['broadcast', 3, 'to all']
  ]);
  assert.equal((await stats()).connections, 1);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('leaving a channel and joining again resumes it from its seq; the other is untouched', async () => {
  const page = await openBoth('left', 'right');
  await server.push('left', 'l1');
  await expectColumn(page, 0, [['data', 1, 'l1']]);
  await page.click('#toggle-0');
  await eventually(async () => (await subscribers('left')) === 0, 'left unsubscribed');
  assert.equal(await page.textContent('#toggle-0'), 'Join');
  await server.push('left', 'l2 while away');
  await server.push('right', 'r1');
  await expectColumn(page, 1, [['data', 1, 'r1']]);
  assert.deepEqual(await column(page, 0), [{ type: 'data', seq: 1, text: 'l1' }]);
  await page.click('#toggle-0');
  await expectColumn(page, 0, [
    ['data', 1, 'l1'],
    ['data', 2, 'l2 while away']
  ]);
  await server.push('left', 'l3');
  await expectColumn(page, 0, [
    ['data', 1, 'l1'],
    ['data', 2, 'l2 while away'],
    ['data', 3, 'l3']
  ]);
  const s = await stats();
  assert.equal(s.connections_by_transport.ws, 1, JSON.stringify(s));
  assert.equal(s.connections, 1, JSON.stringify(s));
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a channel closed by the server comes back on the same socket; the other carries on', async () => {
  const page = await openBoth('closing', 'staying');
  await server.push('closing', 'c1');
  await expectColumn(page, 0, [['data', 1, 'c1']]);
  assert.equal((await server.get('/close?cname=closing')).text, 'ok 2\n');
  await expectColumn(page, 0, [
    ['data', 1, 'c1'],
    ['close', null, '']
  ]);
  // The channel is new after /close: its old token is refused, the page
  // signs again and subscribes on the same socket.
  await eventually(async () => (await subscribers('closing')) === 1, 'closing subscribed again');
  await server.push('closing', 'after the close');
  await server.push('staying', 'still here');
  await expectColumn(page, 0, [
    ['data', 1, 'c1'],
    ['close', null, ''],
    ['data', 1, 'after the close']
  ]);
  await expectColumn(page, 1, [['data', 1, 'still here']]);
  const s = await stats();
  assert.equal(s.connections_by_transport.ws, 1, JSON.stringify(s));
  assert.deepEqual(page.errors, []);
  await page.close();
});
