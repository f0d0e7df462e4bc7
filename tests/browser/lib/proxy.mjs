// A TCP proxy whose connections the test can cut: a dropped connection as
// the browser sees it (reset mid-response), with the server still running.
import net from 'node:net';

export class Proxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  /** Listens on a port the OS picks; resolves to it. */
  listen() {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(this.server.address().port)));
  }

  /** Resets every open connection (both sides); returns how many there were. */
  dropAll() {
    const n = this.sockets.size;
    for (const s of this.sockets) {
      s.resetAndDestroy();
    }
    return n;
  }

  close() {
    this.dropAll();
    return new Promise((resolve) => this.server.close(resolve));
  }
}
