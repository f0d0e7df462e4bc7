#!/usr/bin/env python3
"""Measures server RSS growth per idle subscriber.

Starts target/release/comet on loopback ports, reads its RSS, opens N
subscriber connections (all waiting: seq=1 on fresh channels), waits until
/info counts them all, reads RSS again and prints the growth per connection.
Bounded: N connections, a 120 s deadline; only 127.0.0.1 is contacted.

usage: tools/bench/idle_rss.py [N] [transport: sub|stream|sse|iframe] [channels]
"""
import json, socket, sys, time

from benchlib import FRONT, Comet, admin_get, raise_nofile, rss_kb, wait_until

N = int(sys.argv[1]) if len(sys.argv) > 1 else 15000
TRANSPORT = sys.argv[2] if len(sys.argv) > 2 else "sub"
CHANNELS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
DEADLINE = time.time() + 120


def info():
    return json.loads(admin_get("/info"))


def main():
    raise_nofile()
    server = Comet(front_yaml="  max_connections: 1000000\n", deadline=DEADLINE)
    try:
        time.sleep(1)
        before = rss_kb(server.pid)
        socks = []
        for i in range(N):
            s = socket.create_connection(("127.0.0.1", FRONT))
            s.sendall(f"GET /{TRANSPORT}?cname=c{i % CHANNELS}&seq=1 HTTP/1.1\r\n\r\n".encode())
            socks.append(s)
        wait_until(lambda: info()["subscribers"] >= N, DEADLINE, f"{N} subscribers")
        time.sleep(1)
        after = rss_kb(server.pid)
        per = (after - before) * 1024 / N
        print(f"transport={TRANSPORT} subscribers={N} channels={CHANNELS} rss_before={before}KiB "
              f"rss_after={after}KiB growth_per_subscriber={per:.0f}B")
        for s in socks:
            s.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
