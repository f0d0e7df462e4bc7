// Debian's chromium, driven headless by playwright-core. A missing browser
// is an error, never a skipped test: ./tools/test installs it.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.COMET_CHROMIUM || '/usr/bin/chromium';

/** The repository root (tests/browser/lib/../../..). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Where screenshots go: test-artifacts/ at the repository root (ignored by git). */
export function artifact(name) {
  const dir = join(ROOT, 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

/**
 * Launches chromium. playwright's launch() gives every browser a fresh
 * temporary --user-data-dir of its own (and refuses one in args).
 */
export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install it with "apt-get install -y chromium" (./tools/test does)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync'
    ]
  });
}

/**
 * Waits until `fn()` returns a truthy value, polling; fails with `what()`
 * after `ms` (generous: the tests share a loaded machine).
 */
export async function eventually(fn, what, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === 'function' ? await what() : what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Opens `url` in a new page; uncaught errors are collected in page.errors,
 * and everything the page logs (comet.js logs at debug level) in page.logs.
 */
export async function open(browser, url) {
  const page = await browser.newPage();
  page.errors = [];
  page.logs = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => page.logs.push(`${new Date().toISOString().slice(11, 23)} ${m.text()}`));
  await page.goto(url);
  return page;
}

/** The messages a demo page shows: [{type, seq, text}] from its log list. */
export function shown(page) {
  return page.$$eval('#messages li', (items) =>
    items.map((li) => ({
      cls: li.className,
      type: li.getAttribute('data-type'),
      seq: li.hasAttribute('data-seq') ? Number(li.getAttribute('data-seq')) : null,
      text: li.querySelector('.content') ? li.querySelector('.content').textContent : li.textContent
    }))
  );
}
