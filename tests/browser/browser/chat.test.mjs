// Two browser pages chat through one channel over each transport, typing
// into the chat demo served by the admin listener at /demo/.
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

/** What a chat page shows: ["nickname: text #seq", ...]. */
function lines(page) {
  return page.$$eval('#messages li', (items) => items.map((li) => li.textContent));
}

async function subscribers(cname) {
  const r = await server.get(`/info?cname=${cname}`);
  return JSON.parse(r.text).subscribers;
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('button[type=submit]');
}

for (const transport of ['sse', 'poll', 'iframe']) {
  test(`two pages chat over ${transport}`, async () => {
    const cname = `chat-${transport}`;
    const url = (name) => server.admin(`/demo/chat.html?channel=${cname}&transport=${transport}&name=${name}`);
    const alice = await open(browser, url('alice'));
    const bob = await open(browser, url('bob'));
    assert.equal(await alice.textContent('#meta'), `channel ${cname} over ${transport}`);
    // Once both have subscribed, each knows its seq: nothing later is missed.
    await eventually(async () => (await subscribers(cname)) === 2, `two subscribers of ${cname}`);
    const stats = JSON.parse((await server.get('/stats')).text);
    assert.ok(stats.connections_by_transport[transport] >= 2, JSON.stringify(stats));

    await say(alice, 'hello bob, "quoted" <b>not bold</b> é ✓');
    await eventually(async () => (await lines(bob)).length === 1, 'bob to get the first message');
    await say(bob, 'hi alice');
    await say(alice, 'how are you?');
    await say(bob, 'fine over ' + transport);
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
    if (transport === 'sse') {
      await alice.screenshot({ path: artifact('chat.png') });
    }
    await alice.close();
    await bob.close();
  });
}
