#!/usr/bin/env python3
"""Measures server RSS growth per idle subscriber.

Starts target/release/comet on loopback ports, subscribes once (a warm-up),
reads its RSS, opens N subscriber connections (all waiting: seq=1 on fresh
channels), waits until /info counts them all, reads RSS again and prints the
growth per connection.
Bounded: N connections, a 120 s deadline; only 127.0.0.1 is contacted.

usage: [WS_CHANNELS=K] tools/bench/idle_rss.py [N] [transport: sub|stream|sse|iframe|ws] [channels] [mode] [workers]

With ws and WS_CHANNELS=K > 1, every connection also joins K-1 more channels
with `sub` commands after its upgrade (connection i holds channels (i + j) mod
channels, j = 0..K-1, comet-load's rule), the wait is for N*K subscribers, and
the growth is also given per subscription.

mode: none (the default), none-token (auth none, but each subscribe carries
the same token as in jwt mode, to tell the cost of a longer request from the
cost of verifying it), jwt (front.auth: jwt; every channel gets its own
HS256 token, minted here with hmac, so the verification cache holds one entry
per channel, up to front.jwt.cache_max), jwt-nocache (jwt with
front.jwt.cache_max: 0), or events (jwt, plus the event hook pointed at a
closed port: each subscriber then has its record for the hook).

workers: by default the server runs as deployed for 1M connections (one
worker per private descriptor table, about 52), so how many of them happen
to get connections (each then holds its read buffer and arrays) moves the
figure by +-20 B from run to run; a number here runs that many workers and
max_connections 20000 instead, which takes that noise out when comparing
modes.
"""
import base64, hashlib, hmac, json, os, socket, sys, time

from benchlib import FRONT, Comet, admin_get, raise_nofile, rss_kb, subscribe_request, wait_until, ws_sub

N = int(sys.argv[1]) if len(sys.argv) > 1 else 15000
TRANSPORT = sys.argv[2] if len(sys.argv) > 2 else "sub"
CHANNELS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
MODE = sys.argv[4] if len(sys.argv) > 4 else "none"
WORKERS = int(sys.argv[5]) if len(sys.argv) > 5 else 0
K = int(os.environ.get("WS_CHANNELS", "1"))
assert K == 1 or TRANSPORT == "ws", "several channels per connection need ws"
assert K <= CHANNELS, "a connection's channels must differ"
assert K == 1 or MODE == "none", "sub commands carry no token here"
DEADLINE = time.time() + 120
SECRET = b"idle-rss-bench-secret-0123456789abcdef"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(cname):
    """An HS256 JWT granting `cname` for an hour."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"cname": cname, "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def info():
    return json.loads(admin_get("/info"))


def main():
    raise_nofile()
    front = "  max_connections: 1000000\n" if WORKERS == 0 else "  max_connections: 20000\n"
    front += f"  max_channels_per_connection: {max(K, 16)}\n"
    top = "" if WORKERS == 0 else f"workers: {WORKERS}\n"
    if MODE in ("jwt", "jwt-nocache", "events"):
        cache = ", cache_max: 0" if MODE == "jwt-nocache" else ""
        front += f"  auth: jwt\n  jwt: {{secret: {SECRET.decode()}{cache}}}\n"
    if MODE == "events":
        # Nothing listens on port 9 of loopback: events are queued, retried
        # and dropped, which is all this run needs.
        top += "hooks: {events_url: 'http://127.0.0.1:9/events'}\n"
    tokens = [token(f"c{i}") if MODE != "none" else "" for i in range(CHANNELS)]
    server = Comet(front_yaml=front, top_yaml=top, deadline=DEADLINE)
    try:
        # One subscriber first, so that code run once per process (the
        # subscribe path, JWT verification: about 300 KiB of the binary's
        # pages in jwt mode) is resident before the baseline is read.
        warm = socket.create_connection(("127.0.0.1", FRONT))
        tok = f"&token={token('warm')}" if MODE != "none" else ""
        warm.sendall(subscribe_request(TRANSPORT, "warm", 1, tok))
        wait_until(lambda: info()["subscribers"] >= 1, DEADLINE, "the first subscriber")
        time.sleep(1)
        before = rss_kb(server.pid)
        socks = [warm]
        for i in range(N):
            s = socket.create_connection(("127.0.0.1", FRONT))
            c = i % CHANNELS
            tok = f"&token={tokens[c]}" if tokens[c] else ""
            s.sendall(subscribe_request(TRANSPORT, f"c{c}", 1, tok))
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
        wait_until(lambda: info()["subscribers"] >= N * K + 1, DEADLINE, f"{N * K} subscribers")
        time.sleep(1)
        after = rss_kb(server.pid)
        per = (after - before) * 1024 / N
        extra = f" ws_channels={K} growth_per_subscription={per / K:.0f}B" if K > 1 else ""
        print(f"mode={MODE} workers={WORKERS or 'auto'} transport={TRANSPORT} subscribers={N} channels={CHANNELS} rss_before={before}KiB "
              f"rss_after={after}KiB growth_per_subscriber={per:.0f}B{extra}")
        for s in socks:
            s.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
