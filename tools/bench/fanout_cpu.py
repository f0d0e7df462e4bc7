#!/usr/bin/env python3
"""Server CPU time per delivery when one channel fans out to many streams.

Starts target/release/comet on loopback, opens N /stream subscribers of one
channel, publishes M messages one at a time (each waits until every
subscriber has it), and reports the server's CPU seconds (user + system,
from /proc) spent during the publishes divided by N*M deliveries.
Completeness is checked: every subscriber must get every message.
Bounded: N connections, M messages, a 300 s deadline; only 127.0.0.1.

usage: tools/bench/fanout_cpu.py [N=15000] [M=20] [transport=stream]
(transport: stream, sse, iframe or ws; a ws subscriber gets each message as
one text frame, counted the same way)

With COMET_FLOOR=1 the same run goes against tools/bench/epoll_floor.c (a
bare epoll server writing the same pre-framed bytes), built first with
`cc -O2 -o target/epoll_floor tools/bench/epoll_floor.c`: the floor that
comet's per-delivery CPU is compared with.

With FANOUT_PERF=FILE the server is profiled during the publishes only:
`perf record -p PID -o FILE` is started before the first message, enabled
through its control FIFO (acknowledged, so no sample is missed), and
stopped after the last; read it with `perf report -i FILE`.
"""
import os, selectors, signal, socket, subprocess, sys, tempfile, time

from benchlib import FRONT, Comet, admin_get as get, cpu_s as cpu, raise_nofile, subscribe_request, wait_until

N = int(sys.argv[1]) if len(sys.argv) > 1 else 15000
M = int(sys.argv[2]) if len(sys.argv) > 2 else 20
T = sys.argv[3] if len(sys.argv) > 3 else "stream"
FLOOR = os.environ.get("COMET_FLOOR") == "1"
DEADLINE = time.time() + 300
PERF = os.environ.get("FANOUT_PERF")


class Profile:
    """perf record attached to `pid`, started disabled and switched on and
    off through a control FIFO whose every command perf acknowledges."""

    def __init__(self, pid, out):
        self.dir = tempfile.mkdtemp(prefix="fanout-perf.")
        ctl, ack = os.path.join(self.dir, "ctl"), os.path.join(self.dir, "ack")
        os.mkfifo(ctl)
        os.mkfifo(ack)
        self.proc = subprocess.Popen(["perf", "record", "-q", "-F", "4000", "-D", "-1", "-p", str(pid), "-o", out,
                                      f"--control=fifo:{ctl},{ack}"])
        self.ctl = open(ctl, "w")
        self.ack = open(ack)

    def command(self, cmd):
        self.ctl.write(cmd + "\n")
        self.ctl.flush()
        # perf answers "ack\n" followed by a NUL, which starts the next line.
        answer = self.ack.readline()
        assert answer.strip("\0\n") == "ack", f"perf did not acknowledge {cmd}: {answer!r}"

    def stop(self):
        self.command("disable")
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        self.ctl.close()
        self.ack.close()
        for name in ("ctl", "ack"):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


class Floor:
    """tools/bench/epoll_floor.c: publishes by a line on its stdin."""

    def __init__(self):
        self.proc = subprocess.Popen(["target/epoll_floor", str(FRONT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        wait_until(lambda: socket.create_connection(("127.0.0.1", FRONT)).close() or True,
                   DEADLINE, "epoll_floor to start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def main():
    raise_nofile()
    if FLOOR:
        server = Floor()
    else:
        server = Comet(front_yaml="  max_connections: 20000\n",
                       top_yaml=f"workers: {os.environ.get('COMET_WORKERS', '0')}\n", deadline=DEADLINE)
    sel = selectors.DefaultSelector()
    try:
        socks = []
        for i in range(N):
            s = socket.create_connection(("127.0.0.1", FRONT))
            s.sendall(subscribe_request(T, "fan", 1))
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
            socks.append(s)
        got = [0] * N
        marker = b'"type":"data"'

        def drain(until):
            done = sum(1 for g in got if g >= until)
            while done < N:
                assert time.time() < DEADLINE, f"only {done}/{N} got message {until}"
                for key, _ in sel.select(timeout=1):
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    assert data, "server closed a subscriber"
                    before = got[key.data]
                    got[key.data] += data.count(marker)
                    if before < until <= got[key.data]:
                        done += 1
        if FLOOR:
            # Every subscriber has its response head once each socket has read some bytes.
            heads = [False] * N
            while not all(heads):
                assert time.time() < DEADLINE, "heads missing"
                for key, _ in sel.select(timeout=1):
                    if key.fileobj.recv(65536):
                        heads[key.data] = True
        else:
            while b'"subscribers": %d' % N not in get("/info?cname=fan") and time.time() < DEADLINE:
                time.sleep(0.1)
            drain(0)
        profile = Profile(server.pid, PERF) if PERF else None
        if profile:
            profile.command("enable")
        c0 = cpu(server.pid)
        t0 = time.time()
        for m in range(1, M + 1):
            if FLOOR:
                server.proc.stdin.write(f"{m}\n")
                server.proc.stdin.flush()
                server.proc.stdout.readline()
            else:
                get(f"/push?cname=fan&content=message{m}")
            drain(m)
        c1 = cpu(server.pid)
        if profile:
            profile.stop()
        wall = time.time() - t0
        assert all(g == M for g in got), "missing or duplicate deliveries"
        per = (c1 - c0) / (N * M) * 1e6
        print(f"server={'epoll_floor' if FLOOR else 'comet'} transport={T} subscribers={N} messages={M} deliveries={N*M} complete=yes "
              f"server_cpu_s={c1-c0:.2f} wall_s={wall:.2f} cpu_per_delivery_us={per:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
