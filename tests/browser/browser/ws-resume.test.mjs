// Over WebSocket a page keeps receiving, with nothing lost and nothing
// twice, across a restart of the server binary (same ports: the server
// closes with 1001 and numbers its channels from 1 again) and across a
// connection cut by a TCP proxy: one channel on its own socket (ws.html),
// and two channels on one shared socket (channels.html), each resuming
// from its own seq.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Comet } from '../lib/server.mjs';
import { Proxy } from '../lib/proxy.mjs';
import { launch, open, eventually } from '../lib/browser.mjs';

// Short retries so that the suite stays quick; the defaults are 0.5 s to 30 s.
const BACKOFF = 'backoff_ms=100&backoff_max_ms=800&sub_timeout=3000';

let server;
let browser;

before(async () => {
  server = await new Comet(['polling_timeout: 1']).start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

async function subscribed(...names) {
  for (const cname of names) {
    const r = await server.get(`/info?cname=${cname}`);
    if (r.status !== 200 || JSON.parse(r.text).subscribers !== 1) {
      return false;
    }
  }
  return true;
}

async function wsConnections() {
  return JSON.parse((await server.get('/stats')).text).connections_by_transport.ws;
}

/** The [text, seq] pairs of list `id` on `page`. */
function items(page, id) {
  return page.$$eval(`#${id} li`, (lis) =>
    lis.map((li) => [li.querySelector('.content').textContent, Number(li.getAttribute('data-seq'))])
  );
}

/** Waits until list `id` shows exactly `want` ([text, seq] pairs, in order). */
async function expectItems(page, id, want) {
  await eventually(
    async () => (await items(page, id)).length >= want.length,
    async () => `${id}: ${JSON.stringify(want)}, have ${JSON.stringify(await items(page, id))}; page log:\n${page.logs.join('\n')}`,
    45000
  );
  assert.deepEqual(await items(page, id), want);
}

/**
 * The two page shapes: `lists` are the message lists and `channels` their
 * channel names, in the same order.
 */
const SHAPES = {
  'one channel on its own socket': (tag, extra) => ({
    path: `/demo/ws.html?channel=${tag}&${BACKOFF}${extra}`,
    channels: [tag],
    lists: ['messages']
  }),
  'two channels on one socket': (tag, extra) => ({
    path: `/demo/channels.html?channels=${tag}-a,${tag}-b&${BACKOFF}${extra}`,
    channels: [`${tag}-a`, `${tag}-b`],
    lists: ['messages-0', 'messages-1']
  })
};

for (const [shape, make] of Object.entries(SHAPES)) {
  test(`ws, ${shape}: nothing lost or repeated across a server restart`, async () => {
    const { path, channels, lists } = make(shape.startsWith('one') ? 'restart1' : 'restart2', '');
    const page = await open(browser, server.admin(path));
    await eventually(() => subscribed(...channels), `subscribers of ${channels}`);
    const before = channels.map((c, i) => [1, 2, 3].slice(0, 3 - i).map((n) => [`${c}:m${n}`, n]));
    for (let i = 0; i < channels.length; i++) {
      for (const [text] of before[i]) {
        await server.push(channels[i], text);
      }
    }
    for (let i = 0; i < channels.length; i++) {
      await expectItems(page, lists[i], before[i]);
    }
    // The new process numbers every channel from 1 again: the page learns
    // that the server is behind it and fetches each channel from seq 1.
    await server.restart();
    for (const c of channels) {
      await server.push(c, `${c}:r1`);
    }
    await eventually(() => subscribed(...channels), `subscribers of ${channels} after the restart`, 45000);
    for (const c of channels) {
      await server.push(c, `${c}:r2`);
    }
    for (let i = 0; i < channels.length; i++) {
      await expectItems(page, lists[i], [...before[i], [`${channels[i]}:r1`, 1], [`${channels[i]}:r2`, 2]]);
    }
    await eventually(async () => (await wsConnections()) === 1, 'one WebSocket connection');
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test(`ws, ${shape}: nothing lost or repeated across a dropped connection`, async () => {
    const proxy = new Proxy(server.frontPort);
    const port = await proxy.listen();
    try {
      const { path, channels, lists } = make(shape.startsWith('one') ? 'drop1' : 'drop2', `&front_port=${port}`);
      const page = await open(browser, server.admin(path));
      await eventually(() => subscribed(...channels), `subscribers of ${channels}`);
      for (const c of channels) {
        await server.push(c, `${c}:d1`);
      }
      for (let i = 0; i < channels.length; i++) {
        await expectItems(page, lists[i], [[`${channels[i]}:d1`, 1]]);
      }
      assert.equal(proxy.dropAll(), 2, 'one connection (both ends) to drop');
      // Published while the page is cut off: each channel asks for seq 2.
      for (const c of channels) {
        await server.push(c, `${c}:d2`);
        await server.push(c, `${c}:d3`);
      }
      for (let i = 0; i < channels.length; i++) {
        const c = channels[i];
        await expectItems(page, lists[i], [[`${c}:d1`, 1], [`${c}:d2`, 2], [`${c}:d3`, 3]]);
      }
      await eventually(() => subscribed(...channels), `subscribers of ${channels} again`);
      for (const c of channels) {
        await server.push(c, `${c}:d4`);
      }
      for (let i = 0; i < channels.length; i++) {
        const c = channels[i];
        await expectItems(page, lists[i], [[`${c}:d1`, 1], [`${c}:d2`, 2], [`${c}:d3`, 3], [`${c}:d4`, 4]]);
      }
      await eventually(async () => (await wsConnections()) === 1, 'one WebSocket connection');
      assert.equal(proxy.sockets.size, 2, 'one connection through the proxy');
      assert.deepEqual(page.errors, []);
      await page.close();
    } finally {
      await proxy.close();
    }
  });
}
