// Runs the real comet binary for browser tests: a temporary config file,
// port 0 on the first start (the ports are read from the startup log line),
// the same ports again on a restart.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const START_TIMEOUT_MS = 20000;

function binary() {
  const bin = process.env.COMET_BIN;
  if (!bin) {
    throw new Error('COMET_BIN is not set: run these tests through `cargo test --test browser` (or ./tools/test)');
  }
  return bin;
}

/**
 * A comet server process. `front` is extra YAML lines under `front:`;
 * `adminKey` sets `admin.key`, which get() and push() then send.
 */
export class Comet {
  constructor(front = [], { adminKey = '' } = {}) {
    this.frontLines = front;
    this.adminKey = adminKey;
    this.dir = mkdtempSync(join(tmpdir(), 'comet-browser-'));
    this.frontPort = 0;
    this.adminPort = 0;
    this.child = null;
    this.log = '';
  }

  /** Starts the server and resolves once both listeners are bound. */
  async start() {
    const config = join(this.dir, 'comet.yaml');
    writeFileSync(
      config,
      [
        'log_level: info',
        'workers: 1',
        'front:',
        `  listen: "127.0.0.1:${this.frontPort}"`,
        '  max_connections: 2000',
        ...this.frontLines.map((l) => '  ' + l),
        'admin:',
        `  listen: "127.0.0.1:${this.adminPort}"`,
        '  threads: 1',
        ...(this.adminKey ? [`  key: "${this.adminKey}"`] : []),
        ''
      ].join('\n')
    );
    // Only this process's log: a restart must wait for its own startup line.
    this.log = '';
    const child = spawn(binary(), ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // An exit that stop() did not ask for is a server bug: say so with its log.
    this.exited.then(({ code, signal }) => {
      if (this.child === child) {
        process.stderr.write(`comet exited unexpectedly (code ${code}, signal ${signal}); its log:\n${this.log}\n`);
      }
    });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`comet did not start:\n${this.log}`)), START_TIMEOUT_MS);
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (text) => {
        this.log += text;
        const m = /listening: front [^\s,]*:(\d+), admin [^\s,]*:(\d+)/.exec(this.log);
        if (m) {
          clearTimeout(timer);
          this.frontPort = Number(m[1]);
          this.adminPort = Number(m[2]);
          resolve();
        }
      });
      this.exited.then(({ code }) => {
        clearTimeout(timer);
        reject(new Error(`comet exited with ${code} at start:\n${this.log}`));
      });
    });
    return this;
  }

  /** Stops the server (SIGTERM) and waits for it to exit. */
  async stop() {
    if (!this.child) {
      return;
    }
    const child = this.child;
    this.child = null;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(killer);
  }

  /** Stops and starts again on the same ports. */
  async restart() {
    await this.stop();
    await this.start();
  }

  /** Stops the server and removes its config. */
  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The admin URL of `path`. */
  admin(path) {
    return `http://127.0.0.1:${this.adminPort}${path}`;
  }

  /**
   * A GET on the admin listener on a new connection (a pooled one could
   * still point at the process before a restart), with the admin key if one
   * is set; resolves to {status, headers, text}.
   */
  get(path) {
    return new Promise((resolve, reject) => {
      const headers = this.adminKey ? { authorization: `Bearer ${this.adminKey}` } : {};
      const req = http.get(this.admin(path), { agent: false, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  /** Publishes raw `content` to `cname` with /push; fails unless acknowledged. */
  async push(cname, content) {
    const q = new URLSearchParams({ cname, content });
    const r = await this.get(`/push?${q}`);
    if (r.status !== 200 || r.text !== '{"type":"ok"}\n') {
      throw new Error(`push failed: ${r.status} ${r.text}`);
    }
  }
}
