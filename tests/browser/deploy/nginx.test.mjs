// deploy/nginx/comet.conf in front of comet, as a browser sees it: HTTP/2
// over TLS (a self-signed certificate, accepted for this context only),
// more SSE subscriptions from one page than HTTP/1.1 allows per host, JSONP
// long polling and the forever iframe through the proxy, and no admin path.
//
// Started by tests/heavy/nginx.rs, which runs nginx and comet and passes
// COMET_DEPLOY_URL (nginx's https origin), COMET_DEPLOY_HTTP (its plain
// http origin) and COMET_DEPLOY_ADMIN (comet's admin origin, direct).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { launch, eventually, ROOT } from '../lib/browser.mjs';

const ORIGIN = process.env.COMET_DEPLOY_URL;
const PLAIN = process.env.COMET_DEPLOY_HTTP;
const ADMIN = process.env.COMET_DEPLOY_ADMIN;
// More than the 6 connections per host a browser opens over HTTP/1.1.
const STREAMS = 10;

let browser;
let context;
let page;

/** A GET on a new connection; resolves to {status, headers, text}. */
function get(url) {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { agent: false, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Subscribers of `cname`, from comet's admin listener. */
async function subscribers(cname) {
  return JSON.parse((await get(`${ADMIN}/info?cname=${cname}`)).text).subscribers;
}

/** Publishes `content` to `cname` on comet's admin listener. */
async function push(cname, content) {
  const r = await get(`${ADMIN}/push?cname=${cname}&content=${encodeURIComponent(content)}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.text, '{"type":"ok"}\n');
}

before(async () => {
  assert.ok(ORIGIN && PLAIN && ADMIN, 'run through `cargo test --test heavy nginx`, which sets COMET_DEPLOY_*');
  browser = await launch();
  // The certificate is made for this run and trusted by no one: this
  // context alone skips the check (the connection is still TLS with ALPN).
  context = await browser.newContext({ ignoreHTTPSErrors: true });
  page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  // A same-origin document to run the clients in: comet's /ping, proxied.
  const r = await page.goto(`${ORIGIN}/ping`);
  assert.equal(r.status(), 200);
});

after(async () => {
  await context?.close();
  await browser?.close();
});

test('the page came over HTTP/2', async () => {
  const protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  assert.equal(protocol, 'h2');
});

test(`${STREAMS} SSE subscriptions from one page all receive over one HTTP/2 connection`, async () => {
  await page.evaluate((n) => {
    window.sse = [];
    for (let i = 0; i < n; i++) {
      const got = [];
      const es = new EventSource('/sse?cname=deploy-sse');
      es.onmessage = (e) => got.push(JSON.parse(e.data));
      window.sse.push({ es, got });
    }
  }, STREAMS);
  // All of them are open at once: over HTTP/1.1 the browser would hold
  // every one past the sixth until another closed.
  await eventually(async () => (await subscribers('deploy-sse')) === STREAMS, async () => `${STREAMS} subscribers, have ${await subscribers('deploy-sse')}`);
  await push('deploy-sse', 'to every stream');
  const received = () =>
    page.evaluate(() => window.sse.map((s) => s.got.filter((m) => m.type === 'data').map((m) => m.content)));
  await eventually(async () => (await received()).every((c) => c.length === 1), async () => `a message on every stream, have ${JSON.stringify(await received())}`);
  assert.deepEqual(await received(), Array(STREAMS).fill(['to every stream']));
  await page.evaluate(() => window.sse.forEach((s) => s.es.close()));
  await eventually(async () => (await subscribers('deploy-sse')) === 0, 'the streams to close');
});

/** Runs comet.js with `transport` on `cname` in the page; returns its messages getter. */
async function subscribe(transport, cname) {
  await page.evaluate(
    ({ source, transport, cname }) => {
      if (!window.iComet) {
        // comet.js as a page would load it (its source, injected).
        const s = document.createElement('script');
        s.textContent = source;
        document.head.appendChild(s);
      }
      window.got = window.got || {};
      window.got[cname] = [];
      window.clients = window.clients || [];
      window.clients.push(
        new iComet({
          channel: cname,
          subUrl: location.origin + '/sub',
          transport,
          callback: (content, type) => window.got[cname].push({ content, type })
        })
      );
    },
    { source: readFileSync(join(ROOT, 'web', 'comet.js'), 'utf8'), transport, cname }
  );
  return () => page.evaluate((c) => window.got[c].filter((m) => m.type === 'data').map((m) => m.content), cname);
}

for (const transport of ['poll', 'iframe']) {
  test(`${transport} through nginx receives`, async () => {
    const cname = `deploy-${transport}`;
    const messages = await subscribe(transport, cname);
    await eventually(async () => (await subscribers(cname)) === 1, `the ${transport} subscriber`);
    await push(cname, `one by ${transport}`);
    await eventually(async () => (await messages()).length === 1, async () => `one message, have ${JSON.stringify(await messages())}`);
    await push(cname, `two by ${transport}`);
    await eventually(async () => (await messages()).length === 2, async () => `two messages, have ${JSON.stringify(await messages())}`);
    assert.deepEqual(await messages(), [`one by ${transport}`, `two by ${transport}`]);
    if (transport === 'poll') {
      // Each answered long poll is a finished resource: it came over h2.
      const polls = await page.evaluate(() =>
        performance.getEntriesByType('resource').filter((e) => e.name.includes('/sub?')).map((e) => e.nextHopProtocol)
      );
      assert.ok(polls.length >= 2, JSON.stringify(polls));
      assert.ok(polls.every((p) => p === 'h2'), JSON.stringify(polls));
    }
  });
}

test('no admin path is served through nginx', async () => {
  for (const path of ['/push?cname=x&content=y', '/pub?cname=x&content=y', '/sign?cname=x', '/stats', '/metrics', '/info', '/demo/', '/', '/sse/x']) {
    const r = await get(ORIGIN + path);
    assert.equal(r.status, 404, path);
  }
  assert.equal(await subscribers('x'), 0);
  // The front answers through it, also to an HTTP/1.1 client.
  const r = await get(`${ORIGIN}/ping`);
  assert.equal(r.status, 200);
  assert.match(r.text, /"type":"ping"/);
});

test('plain http redirects to https', async () => {
  // (Not a subscription path: tests/heavy/nginx.rs reads those in nginx's
  // log as the browser's.)
  const r = await get(`${PLAIN}/any/path?a=1`);
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, 'https://127.0.0.1/any/path?a=1');
});

test('the page saw no error', () => {
  assert.deepEqual(page.errors, []);
});
