#!/usr/bin/env python3
"""Measures the subscribe rate with `front.auth: jwt` against `auth: none`
(and against `auth: none` with the same URLs, tokens and all).

For each round and each mode, starts target/release/comet on the benchmark
ports and runs target/release/comet-load: N `/stream` subscribers over C
channels as fast as they connect, no message. In jwt mode comet-load signs one
HS256 token per channel (--jwt-secret); with C = N every subscriber brings a
token the server has not seen, so every subscribe verifies a signature (the
verification cache never hits). Prints each run's subscribes per second
(comet-load's `ready / connect_secs`) and the server's CPU time per
subscribe (user + system, from /proc, read once /info counts all N), the
median of each mode, and the ratios of the medians. On a shared machine the
rate moves with everything else that runs; the CPU per subscribe much less.
Modes alternate so that a change in the machine's load hits both alike.
Loopback only; every run is bounded by comet-load's own --duration-secs.

usage: tools/bench/jwt_subscribe.py [N] [C] [rounds]
"""
import json, statistics, subprocess, sys, time

from benchlib import ADMIN, FRONT, Comet, admin_get, cpu_s, raise_nofile, wait_until

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
C = int(sys.argv[2]) if len(sys.argv) > 2 else N
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
SECRET = "jwt-subscribe-bench-secret-0123456789"
LOAD = "target/release/comet-load"
# none-token: auth none, but the same subscribe URLs as jwt mode (with their
# tokens), to tell what verifying costs from what a longer request costs.
MODES = {
    "none": "",
    "none-token": "",
    "jwt": f"  auth: jwt\n  jwt: {{secret: {SECRET}}}\n",
}


def one_run(mode):
    server = Comet(front_yaml=MODES[mode], deadline=time.time() + 30)
    try:
        cmd = [LOAD, "--front", f"127.0.0.1:{FRONT}", "--admin", f"127.0.0.1:{ADMIN}",
               "--connections", str(N), "--channels", str(C), "--rate", "1000000",
               "--max-pending", "2000", "--messages", "0", "--transport", "stream",
               "--hold-secs", "5", "--duration-secs", "60", "--json"]
        if mode != "none":
            cmd += ["--jwt-secret", SECRET]
        cpu0 = cpu_s(server.pid)
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: json.loads(admin_get("/info"))["subscribers"] >= N,
                   time.time() + 60, f"{N} subscribers")
        cpu = cpu_s(server.pid) - cpu0
        out, err = load.communicate(timeout=90)
        summary = json.loads(out.strip().splitlines()[-1])
        if summary["ready"] != N or summary["error_total"] != 0:
            raise RuntimeError(f"{mode}: not every subscriber got in: {out} {err}")
        return summary["ready"] / summary["connect_secs"], cpu * 1e6 / N
    finally:
        server.stop()


def main():
    raise_nofile()
    rates = {mode: [] for mode in MODES}
    cpus = {mode: [] for mode in MODES}
    for r in range(ROUNDS):
        for mode in MODES:
            rate, cpu = one_run(mode)
            rates[mode].append(rate)
            cpus[mode].append(cpu)
            print(f"round {r + 1} {mode}: {rate:,.0f} subscribes/s, server CPU {cpu:.1f} µs per subscribe",
                  flush=True)
    rate = {mode: statistics.median(v) for mode, v in rates.items()}
    cpu = {mode: statistics.median(v) for mode, v in cpus.items()}
    for mode in MODES:
        print(f"{mode}: median {rate[mode]:,.0f} subscribes/s (min {min(rates[mode]):,.0f}, "
              f"max {max(rates[mode]):,.0f}); median server CPU {cpu[mode]:.1f} µs per subscribe "
              f"(min {min(cpus[mode]):.1f}, max {max(cpus[mode]):.1f}), {ROUNDS} runs")
    print(f"jwt / none: rate {rate['jwt'] / rate['none']:.1%}; "
          f"CPU-bound rate (inverse CPU per subscribe) {cpu['none'] / cpu['jwt']:.1%}")
    print(f"jwt / none-token: rate {rate['jwt'] / rate['none-token']:.1%}; "
          f"CPU-bound rate {cpu['none-token'] / cpu['jwt']:.1%}")


if __name__ == "__main__":
    main()
