// The demo index, a page written for icomet.js's API, and the operator page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Comet } from '../lib/server.mjs';
import { launch, open, eventually, artifact } from '../lib/browser.mjs';

let server;
let browser;

before(async () => {
  server = await new Comet().start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

async function stats() {
  return JSON.parse((await server.get('/stats')).text);
}

test('every link of the demo index works', async () => {
  const page = await open(browser, server.admin('/demo'));
  assert.equal(new URL(page.url()).pathname, '/demo/');
  const links = await page.$$eval('a', (as) => as.map((a) => a.href));
  assert.ok(links.length >= 7, JSON.stringify(links));
  for (const link of links) {
    const url = new URL(link);
    const r = await server.get(url.pathname + url.search);
    assert.equal(r.status, 200, link);
  }
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a page written for icomet.js works unchanged', async () => {
  const page = await open(browser, server.admin('/demo/index.html'));
  await page.addScriptTag({ url: '/demo/config.js' });
  await page.addScriptTag({ url: '/demo/comet.js' });
  // icomet.js's snake_case names, a callback that takes only the content,
  // and a pubUrl ending in cb=? as its chat demo has.
  await page.evaluate(() => {
    window.got = [];
    const front = 'http://' + location.hostname + ':' + window.COMET_SERVER.front_port;
    window.comet = new iComet({
      channel: 'compat',
      sub_url: front + '/sub',
      pub_url: '/push?cb=?',
      sub_callback: (content) => window.got.push(content)
    });
  });
  await eventually(async () => JSON.parse((await server.get('/info?cname=compat')).text).subscribers === 1, 'a subscriber');
  await page.evaluate(() => window.comet.pub('from an icomet page', (reply) => (window.reply = reply)));
  await server.push('compat', 'from the server');
  await eventually(async () => (await page.evaluate(() => window.got.length)) === 2, 'two messages');
  assert.deepEqual(await page.evaluate(() => window.got), ['from an icomet page', 'from the server']);
  assert.deepEqual(await page.evaluate(() => window.reply), { type: 'ok' });
  // unsub() ends the subscription, sub() resumes it from the same seq.
  await page.evaluate(() => window.comet.unsub());
  await eventually(async () => JSON.parse((await server.get('/info?cname=compat')).text).subscribers === 0, 'no subscriber');
  await server.push('compat', 'while away');
  await page.evaluate(() => window.comet.sub());
  await eventually(async () => (await page.evaluate(() => window.got.length)) === 3, 'the missed message');
  assert.deepEqual(await page.evaluate(() => window.got[2]), 'while away');
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('the operator page shows the /stats figures and charts them', async () => {
  const subscriber = await open(browser, server.admin('/demo/sse.html?channel=ops'));
  const ops = await open(browser, server.admin('/demo/ops.html'));
  const figure = (name) => ops.textContent(`#fig-${name}`);
  // Publish until a per-second rate shows up.
  await eventually(async () => {
    await server.push('ops', 'tick');
    await new Promise((r) => setTimeout(r, 150));
    return parseFloat(await figure('published-rate')) > 0 && parseFloat(await figure('delivered-rate')) > 0;
  }, async () => `a message rate, have ${await figure('published-rate')}`);
  // Once publishing stops, the counters settle and the page catches up.
  await eventually(async () => {
    const s = await stats();
    return (
      (await figure('published')) === s.published.toLocaleString('en-US') &&
      (await figure('delivered')) === s.delivered.toLocaleString('en-US') &&
      (await figure('subscribers')) === String(s.subscribers) &&
      (await figure('channels')) === String(s.channels)
    );
  }, async () => `figures equal to /stats ${JSON.stringify(await stats())}`);
  assert.equal(await figure('subscribers'), '1');
  assert.match(await figure('rss'), /^\d+\.\d MiB$/);
  // Delivery latency since start, as /stats estimates it, in ms (or s).
  const latency = (await stats()).delivery_latency_ms.all;
  assert.ok(latency.count > 0, JSON.stringify(latency));
  for (const q of ['p50', 'p99']) {
    const shown = await figure(`latency-${q}`);
    assert.match(shown, /^\d+\.\d+ (ms|s)$/, q);
    const ms = shown.endsWith(' s') ? parseFloat(shown) * 1000 : parseFloat(shown);
    assert.ok(Math.abs(ms - latency[q]) <= Math.max(0.01, latency[q] * 0.01), `${q}: ${shown} vs ${latency[q]} ms`);
  }
  // Each chart has drawn its data: coloured pixels inside the plot area
  // (right of the axis labels, below the legend; grid lines are grey).
  for (const id of ['chart-rate', 'chart-subs', 'chart-rss', 'chart-transports', 'chart-latency']) {
    const coloured = await ops.$eval(`#${id}`, (c) => {
      const r = window.devicePixelRatio || 1;
      const x0 = Math.ceil(50 * r);
      const y0 = Math.ceil(20 * r);
      const d = c.getContext('2d').getImageData(x0, y0, c.width - x0, c.height - y0).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 0 && (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2])) {
          n++;
        }
      }
      return n;
    });
    assert.ok(coloured > 5, `${id} has ${coloured} coloured pixels in its plot`);
  }
  await ops.screenshot({ path: artifact('ops.png') });
  assert.deepEqual(ops.errors, []);
  await ops.close();
  await subscriber.close();
});

test('with admin.key set, the pages pass on ?key= and refuse to publish without it', async () => {
  const keyed = await new Comet([], { adminKey: 'demo-k3y' }).start();
  try {
    // The index passes its ?key= on to every page it links.
    const index = await open(browser, keyed.admin('/demo/?key=demo-k3y'));
    const links = await index.$$eval('main a[href*=".html"]', (as) => as.map((a) => a.href));
    assert.ok(links.length >= 7 && links.every((l) => new URL(l).searchParams.get('key') === 'demo-k3y'), JSON.stringify(links));
    await index.close();

    const chat = (name, key) =>
      open(browser, keyed.admin(`/demo/chat.html?channel=keyed&name=${name}${key ? '&key=' + key : ''}`));
    const alice = await chat('alice', 'demo-k3y');
    const eve = await chat('eve', '');
    await eventually(
      async () => JSON.parse((await keyed.get('/info?cname=keyed')).text).subscribers === 2,
      'two subscribers of keyed'
    );
    await eve.fill('#text', 'no key');
    await eve.click('button[type=submit]');
    await eventually(async () => (await eve.textContent('#status')) === 'not sent: HTTP 401', 'eve refused');
    await alice.fill('#text', 'with the key');
    await alice.click('button[type=submit]');
    for (const page of [alice, eve]) {
      await eventually(
        async () => (await page.$$eval('#messages li', (l) => l.map((li) => li.textContent))).join() === 'alice:with the key#1',
        'the keyed message, and only that'
      );
    }
    assert.equal(await alice.textContent('#status'), '');

    // The operator page sends the key to /stats; without it, it says why.
    const ops = await open(browser, keyed.admin('/demo/ops.html?key=demo-k3y'));
    await eventually(async () => (await ops.textContent('#fig-subscribers')) === '2', 'two subscribers on the keyed operator page');
    const blind = await open(browser, keyed.admin('/demo/ops.html'));
    await eventually(async () => /HTTP 401.*key=KEY/.test(await blind.textContent('#meta')), 'the 401 explained');
    for (const page of [alice, eve, ops, blind]) {
      assert.deepEqual(page.errors, []);
      await page.close();
    }
  } finally {
    await keyed.dispose();
  }
});
