#!/usr/bin/env python3
"""Measures server RSS growth per idle subscriber.

Starts target/release/comet on loopback ports, reads its RSS, opens N
subscriber connections (all waiting: seq=1 on fresh channels), waits until
/info counts them all, reads RSS again and prints the growth per connection.
Bounded: N connections, a 120 s deadline; only 127.0.0.1 is contacted.

usage: tools/bench/idle_rss.py [N] [transport: sub|stream|sse|iframe] [channels]
"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 15000
TRANSPORT = sys.argv[2] if len(sys.argv) > 2 else "sub"
CHANNELS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
FRONT = int(os.environ.get("COMET_BENCH_FRONT", "28100"))
ADMIN = int(os.environ.get("COMET_BENCH_ADMIN", "28000"))
BIN = os.environ.get("COMET_BIN", "target/release/comet")
DEADLINE = time.time() + 120

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")

def info():
    with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/info", timeout=5) as r:
        return json.loads(r.read())

def main():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write(f"log_level: warn\nfront:\n  listen: 127.0.0.1:{FRONT}\n  max_connections: 1000000\nadmin:\n  listen: 127.0.0.1:{ADMIN}\n")
    cfg.close()
    server = subprocess.Popen([BIN, "-c", cfg.name])
    try:
        while True:
            try:
                info()
                break
            except OSError:
                if time.time() > DEADLINE:
                    raise
                time.sleep(0.05)
        time.sleep(1)
        before = rss_kb(server.pid)
        socks = []
        for i in range(N):
            s = socket.create_connection(("127.0.0.1", FRONT))
            s.sendall(f"GET /{TRANSPORT}?cname=c{i % CHANNELS}&seq=1 HTTP/1.1\r\n\r\n".encode())
            socks.append(s)
        while info()["subscribers"] < N:
            if time.time() > DEADLINE:
                raise RuntimeError(f"only {info()['subscribers']} of {N} subscribed")
            time.sleep(0.1)
        time.sleep(1)
        after = rss_kb(server.pid)
        per = (after - before) * 1024 / N
        print(f"transport={TRANSPORT} subscribers={N} channels={CHANNELS} rss_before={before}KiB "
              f"rss_after={after}KiB growth_per_subscriber={per:.0f}B")
        for s in socks:
            s.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        os.unlink(cfg.name)

if __name__ == "__main__":
    main()
