"""Shared by the benchmark scripts: loopback ports, starting comet, /proc readings.

Ports come from COMET_BENCH_FRONT / COMET_BENCH_ADMIN (default 28100 / 28000),
the binary from COMET_BIN (default target/release/comet). Only 127.0.0.1 is
ever contacted.
"""
import json, os, resource, subprocess, tempfile, time, urllib.request

FRONT = int(os.environ.get("COMET_BENCH_FRONT", "28100"))
ADMIN = int(os.environ.get("COMET_BENCH_ADMIN", "28000"))
BIN = os.environ.get("COMET_BIN", "target/release/comet")
TICK = os.sysconf("SC_CLK_TCK")


def raise_nofile():
    """Raises the soft descriptor limit to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# A fixed Sec-WebSocket-Key (the sample of RFC 6455 section 1.3): the
# benchmarks read no answers beyond counting them, so no secrecy is needed.
WS_UPGRADE = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def subscribe_request(transport, cname, seq, query=""):
    """The request that subscribes to `cname` from `seq` on a front
    transport (sub, stream, sse, iframe, or ws: a WebSocket upgrade);
    `query` is appended to the query string (`&token=...`)."""
    head = f"GET /{transport}?cname={cname}&seq={seq}{query} HTTP/1.1\r\nHost: x\r\n".encode()
    return head + (WS_UPGRADE if transport == "ws" else b"") + b"\r\n"


def ws_text(payload):
    """One masked WebSocket text frame (client to server) carrying `payload`."""
    data = payload.encode()
    mask = b"\x37\xfa\x21\x3d"
    assert len(data) < 126, "commands are short"
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def ws_sub(cname, seq):
    """A `sub` command joining one more channel on a WebSocket."""
    return ws_text(json.dumps({"type": "sub", "cname": cname, "seq": seq}, separators=(",", ":")))


def admin_get(path):
    """GET on the admin listener; returns the body."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}{path}", timeout=10) as r:
        return r.read()


def rss_kb(pid):
    """The process's resident set, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid):
    """User + system CPU seconds the process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_until(ready, deadline, what):
    """Polls `ready()` (OSError counts as not yet) until it holds or `deadline` passes."""
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Comet:
    """comet on the benchmark ports, with `front_yaml` lines added under `front:`;
    its log goes to `stderr` (an open file) when given."""

    def __init__(self, front_yaml="", top_yaml="", deadline=None, stderr=None):
        self.cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        self.cfg.write(f"log_level: warn\n{top_yaml}front:\n  listen: 127.0.0.1:{FRONT}\n{front_yaml}"
                       f"admin:\n  listen: 127.0.0.1:{ADMIN}\n")
        self.cfg.close()
        self.proc = subprocess.Popen([BIN, "-c", self.cfg.name], stderr=stderr)
        self.pid = self.proc.pid
        wait_until(lambda: admin_get("/info"), deadline or time.time() + 30, "comet to start")
        time.sleep(0.2)
        if self.proc.poll() is not None:  # another server answered on these ports
            raise RuntimeError(f"comet exited with {self.proc.returncode}; are ports {FRONT}/{ADMIN} taken?")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        os.unlink(self.cfg.name)
