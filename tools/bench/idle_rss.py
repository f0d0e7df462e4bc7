#!/usr/bin/env python3
"""Measures server RSS growth per idle subscriber.

Starts target/release/comet on loopback ports, reads its RSS, opens N
subscriber connections (all waiting: seq=1 on fresh channels), waits until
/info counts them all, reads RSS again and prints the growth per connection.
Bounded: N connections, a 120 s deadline; only 127.0.0.1 is contacted.

usage: tools/bench/idle_rss.py [N] [transport: sub|stream|sse|iframe|ws] [channels] [ws channels K]

With ws and K > 1, every connection also joins K-1 more channels with `sub`
commands after its upgrade (connection i holds channels (i + j) mod
channels, j = 0..K-1, comet-load's rule), the wait is for N*K subscribers,
and the growth is also given per subscription.
"""
import json, socket, sys, time

from benchlib import FRONT, Comet, admin_get, raise_nofile, rss_kb, subscribe_request, wait_until, ws_sub

N = int(sys.argv[1]) if len(sys.argv) > 1 else 15000
TRANSPORT = sys.argv[2] if len(sys.argv) > 2 else "sub"
CHANNELS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
K = int(sys.argv[4]) if len(sys.argv) > 4 else 1
assert K == 1 or TRANSPORT == "ws", "several channels per connection need ws"
assert K <= CHANNELS, "a connection's channels must differ"
DEADLINE = time.time() + 120


def info():
    return json.loads(admin_get("/info"))


def main():
    raise_nofile()
    server = Comet(front_yaml=f"  max_connections: 1000000\n  max_channels_per_connection: {max(K, 16)}\n",
                   deadline=DEADLINE)
    try:
        time.sleep(1)
        before = rss_kb(server.pid)
        socks = []
        for i in range(N):
            s = socket.create_connection(("127.0.0.1", FRONT))
            s.sendall(subscribe_request(TRANSPORT, f"c{i % CHANNELS}", 1))
            if K > 1:
                # The 101 first: commands sent before it would be read as HTTP.
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    assert chunk, "the server closed instead of upgrading"
                    head += chunk
                assert head.startswith(b"HTTP/1.1 101 "), head
                s.sendall(b"".join(ws_sub(f"c{(i + j) % CHANNELS}", 1) for j in range(1, K)))
            socks.append(s)
        wait_until(lambda: info()["subscribers"] >= N * K, DEADLINE, f"{N * K} subscribers")
        time.sleep(1)
        after = rss_kb(server.pid)
        per = (after - before) * 1024 / N
        extra = f" ws_channels={K} growth_per_subscription={per / K:.0f}B" if K > 1 else ""
        print(f"transport={TRANSPORT} subscribers={N} channels={CHANNELS} rss_before={before}KiB "
              f"rss_after={after}KiB growth_per_subscriber={per:.0f}B{extra}")
        for s in socks:
            s.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
