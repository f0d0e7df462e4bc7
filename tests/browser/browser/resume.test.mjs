// A page keeps receiving, with nothing lost and nothing twice, across a
// restart of the server binary (same ports) and across a dropped connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Comet } from '../lib/server.mjs';
import { Proxy } from '../lib/proxy.mjs';
import { launch, open, eventually, shown } from '../lib/browser.mjs';

const TRANSPORTS = ['sse', 'poll', 'iframe'];
// Short retries so that the suite stays quick; the defaults are 0.5 s to 30 s.
// A forever iframe whose connection is cut never finishes loading, so the
// client can only notice by the missing heartbeat: the server sends a noop
// after 1 s of silence here, and the pages give up after 3 s without one.
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

async function subscribed(cname) {
  const r = await server.get(`/info?cname=${cname}`);
  return r.status === 200 && JSON.parse(r.text).subscribers === 1;
}

/** Waits until `page` shows exactly `want` (contents, in order, seqs rising). */
async function expectShown(page, want) {
  const texts = async () => (await shown(page)).map((m) => m.text);
  await eventually(
    async () => (await texts()).length >= want.length,
    async () => `${JSON.stringify(want)}, have ${JSON.stringify(await texts())}; page log:\n${page.logs.join('\n')}`,
    45000
  );
  assert.deepEqual(await texts(), want);
}

for (const transport of TRANSPORTS) {
  test(`${transport}: nothing lost or repeated across a server restart`, async () => {
    const cname = `restart-${transport}`;
    const page = await open(browser, server.admin(`/demo/${transport}.html?channel=${cname}&${BACKOFF}`));
    await eventually(() => subscribed(cname), `a subscriber of ${cname}`);
    const before = ['m1', 'm2', 'm3', 'm4', 'm5'];
    for (const m of before) {
      await server.push(cname, m);
    }
    await expectShown(page, before);

    // The new process numbers the channel from 1 again: the page expects 6,
    // learns that the server is behind it, and fetches from seq 1.
    await server.restart();
    await server.push(cname, 'r1');
    await server.push(cname, 'r2');
    await eventually(() => subscribed(cname), `a subscriber of ${cname} after the restart`, 45000);
    await server.push(cname, 'r3');
    await expectShown(page, [...before, 'r1', 'r2', 'r3']);
    const seqs = (await shown(page)).map((m) => m.seq);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 1, 2, 3]);
    assert.deepEqual(page.errors, []);
    await page.close();
  });
}

for (const transport of TRANSPORTS) {
  test(`${transport}: nothing lost or repeated across a dropped connection`, async () => {
    const cname = `drop-${transport}`;
    const proxy = new Proxy(server.frontPort);
    const port = await proxy.listen();
    try {
      const url = `/demo/${transport}.html?channel=${cname}&front_port=${port}&${BACKOFF}`;
      const page = await open(browser, server.admin(url));
      await eventually(() => subscribed(cname), `a subscriber of ${cname}`);
      await server.push(cname, 'd1');
      await server.push(cname, 'd2');
      await expectShown(page, ['d1', 'd2']);

      assert.ok(proxy.dropAll() > 0, 'a connection was open to drop');
      // Published while the page is cut off: the reconnect asks for seq 3.
      await server.push(cname, 'd3');
      await server.push(cname, 'd4');
      await expectShown(page, ['d1', 'd2', 'd3', 'd4']);
      await eventually(() => subscribed(cname), `a subscriber of ${cname} again`);
      await server.push(cname, 'd5');
      await expectShown(page, ['d1', 'd2', 'd3', 'd4', 'd5']);
      assert.deepEqual((await shown(page)).map((m) => m.seq), [1, 2, 3, 4, 5]);
      assert.deepEqual(page.errors, []);
      await page.close();
    } finally {
      await proxy.close();
    }
  });
}

// Every /iframe document calls the same parent.icomet_cb: a frame being
// replaced (a reconnect from seq 1 after a restart) can still deliver for a
// moment, and its message must not count as the current frame's. Here a
// frame of the page's own origin calls icomet_cb with a message for the
// channel, as a stale frame would.
test('iframe: only the current frame delivers', async () => {
  const cname = 'frames';
  const page = await open(browser, server.admin(`/demo/iframe.html?channel=${cname}&${BACKOFF}`));
  await eventually(() => subscribed(cname), `a subscriber of ${cname}`);
  await server.push(cname, 'first');
  await expectShown(page, ['first']);
  await page.evaluate((cname) => {
    const f = document.createElement('iframe');
    f.name = 'stale';
    f.srcdoc =
      '<script>try { document.domain = ' + JSON.stringify(location.hostname) + ';' +
      ' parent.icomet_cb({type: "data", cname: ' + JSON.stringify(cname) + ', seq: 2, content: "stale"});' +
      ' window.result = "called"; } catch (e) { window.result = String(e); }</' + 'script>';
    document.body.appendChild(f);
  }, cname);
  const stale = await eventually(() => page.frame({ name: 'stale' }), 'the stale frame');
  await eventually(async () => (await stale.evaluate(() => window.result)) !== undefined, 'its script to run');
  assert.equal(await stale.evaluate(() => window.result), 'called');
  await server.push(cname, 'second');
  await expectShown(page, ['first', 'second']);
  assert.deepEqual((await shown(page)).map((m) => m.seq), [1, 2]);
  assert.deepEqual(page.errors, []);
  await page.close();
});
