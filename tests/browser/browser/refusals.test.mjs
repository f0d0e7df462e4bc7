// 401 and 429 refusals reach the page's callback, over every transport; a
// page refused with 429 gets in after backoff once a place is free.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Comet } from '../lib/server.mjs';
import { launch, open, eventually, shown } from '../lib/browser.mjs';

let server;
let browser;

before(async () => {
  server = await new Comet(['auth: token', 'max_subscribers_per_channel: 1']).start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

async function subscribers(cname) {
  const r = await server.get(`/info?cname=${cname}`);
  return JSON.parse(r.text).subscribers;
}

for (const transport of ['sse', 'poll', 'iframe']) {
  test(`${transport}: a subscribe without a valid token gets 401 in the callback`, async () => {
    const page = await open(browser, server.admin(`/demo/${transport}.html?channel=locked-${transport}`));
    await eventually(async () => (await shown(page)).length > 0, 'a refusal on the page');
    const [first] = await shown(page);
    assert.deepEqual(first, { cls: 'refusal', type: '401', seq: null, text: 'Token error' });
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test(`${transport}: a full channel gives 429 in the callback, then a place after backoff`, async () => {
    const cname = `full-${transport}`;
    const url = server.admin(`/demo/${transport}.html?channel=${cname}&sign=1&backoff_ms=100&backoff_max_ms=800`);
    // Signs with /sign (JSONP on the admin origin), then subscribes with the token.
    const first = await open(browser, url);
    await eventually(async () => (await subscribers(cname)) === 1, `a subscriber of ${cname}`);
    await server.push(cname, 'for the first');
    await eventually(async () => (await shown(first)).length === 1, 'the first page to receive');

    const second = await open(browser, url);
    await eventually(async () => (await shown(second)).length > 0, 'a refusal on the second page');
    const [refusal] = await shown(second);
    assert.deepEqual(refusal, { cls: 'refusal', type: '429', seq: null, text: 'Too many subscribers' });

    // Once the first page is gone, the second gets in on a retry; it has no
    // seq yet, so it only sees what is published after that.
    await first.close();
    await eventually(
      async () => {
        await server.push(cname, 'for the second');
        await new Promise((r) => setTimeout(r, 200));
        return (await shown(second)).some((m) => m.text === 'for the second');
      },
      async () => `the second page to receive, have ${JSON.stringify(await shown(second))}`,
      20000
    );
    assert.deepEqual(second.errors, []);
    await second.close();
  });
}
