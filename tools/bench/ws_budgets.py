#!/usr/bin/env python3
"""Issue 13's WebSocket budgets at one size, measured interleaved.

Runs idle_rss.py and fanout_cpu.py in rounds; every round runs every case
once, in a rotated order, so that the machine's load drifts over all cases
alike. Prints each run's line as it comes (with its UTC time), then per case
the median, range and run count, and the derived figures with theirs:

- idle RSS per subscriber, ws / sse / sub, 100 channels and a channel per
  subscriber (CHANNELS = N); budget: ws within +-10% of sse;
- an extra channel on one ws connection: (growth(K=4) - growth(K=1)) / 3
  per round, at 100 channels and at N channels; budget <= 64 B;
- fan-out CPU per delivery, ws / sse / stream and the bare C floor
  (COMET_FLOOR=1); budget: ws within 5% of sse (the ratio per round too).

usage: tools/bench/ws_budgets.py [rounds=5] [N=15000] [M=20] [parts=rss,extra,fanout] [workers=0]

workers: passed to idle_rss.py (0: as deployed, about 52 workers; a number
runs that many, which takes out the noise of which workers get connections).

Every run is one child process with its own deadline; the floor needs
target/epoll_floor (cc -O2 -o target/epoll_floor tools/bench/epoll_floor.c).
Only 127.0.0.1 is contacted; at most N + 1 connections are open at a time.
"""
import os, re, statistics, subprocess, sys, time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
N = int(sys.argv[2]) if len(sys.argv) > 2 else 15000
M = int(sys.argv[3]) if len(sys.argv) > 3 else 20
PARTS = (sys.argv[4] if len(sys.argv) > 4 else "rss,extra,fanout").split(",")
WORKERS = sys.argv[5] if len(sys.argv) > 5 else "0"
HERE = os.path.dirname(os.path.abspath(__file__))


def cases():
    """(name, argv, extra environment, the figure to read) for every run of a round."""
    out = []
    if "rss" in PARTS:
        for chans in (100, N):
            for t in ("ws", "sse", "sub"):
                out.append((f"rss {t} ch={chans}", ["idle_rss.py", str(N), t, str(chans), "none", WORKERS], {},
                            "growth_per_subscriber"))
    if "extra" in PARTS:
        for chans in (100, N):
            for k in (1, 4):
                out.append((f"rss ws K={k} ch={chans}", ["idle_rss.py", str(N), "ws", str(chans), "none", WORKERS],
                            {"WS_CHANNELS": str(k)}, "growth_per_subscriber"))
    if "fanout" in PARTS:
        for t in ("ws", "sse", "stream"):
            out.append((f"fanout {t}", ["fanout_cpu.py", str(N), str(M), t], {}, "cpu_per_delivery_us"))
        out.append(("fanout floor", ["fanout_cpu.py", str(N), str(M), "stream"], {"COMET_FLOOR": "1"},
                    "cpu_per_delivery_us"))
    return out


def run(argv, env, figure):
    """One benchmark run; its output line and the figure read from it."""
    proc = subprocess.run(["nice", "-n", "5", sys.executable, os.path.join(HERE, argv[0]), *argv[1:]],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    found = re.search(rf"\b{figure}=([0-9.]+)", line)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {line}\n{proc.stderr[-2000:]}")
    return line, float(found.group(1))


def summary(values):
    return (f"median {statistics.median(values):.2f}  range {min(values):.2f}-{max(values):.2f}  "
            f"runs {len(values)}")


def main():
    todo = cases()
    got = {name: [] for name, *_ in todo}
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC: {ROUNDS} rounds of {len(todo)} runs", flush=True)
    for r in range(ROUNDS):
        order = todo[r % len(todo):] + todo[:r % len(todo)]
        for name, argv, env, figure in order:
            line, value = run(argv, env, figure)
            got[name].append(value)
            print(f"{time.strftime('%H:%M:%S', time.gmtime())} r{r} {name}: {line}", flush=True)
    print(f"# done {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC")
    for name, values in got.items():
        print(f"{name:24} {summary(values)}")
    # Figures derived per round (the two runs of a pair are from the same round).
    for chans in (100, N):
        ws, sse = got.get(f"rss ws ch={chans}"), got.get(f"rss sse ch={chans}")
        if ws and sse:
            print(f"{'rss ws/sse ch=' + str(chans):24} {summary([w / s for w, s in zip(ws, sse)])}")
        k1, k4 = got.get(f"rss ws K=1 ch={chans}"), got.get(f"rss ws K=4 ch={chans}")
        if k1 and k4:
            print(f"{'extra channel ch=' + str(chans):24} {summary([(b - a) / 3 for a, b in zip(k1, k4)])}  (B)")
    ws, sse = got.get("fanout ws"), got.get("fanout sse")
    if ws and sse:
        print(f"{'fanout ws/sse':24} {summary([w / s for w, s in zip(ws, sse)])}")


if __name__ == "__main__":
    main()
