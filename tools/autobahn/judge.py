"""Judges an Autobahn fuzzingclient report: OUTDIR/index.json.

Prints the count of cases by behavior, then every failing case with its
description, expectation and result. Exits 0 when every case's behavior is
OK, NON-STRICT or INFORMATIONAL and every behaviorClose is OK or
INFORMATIONAL, 1 otherwise, 2 when the report is empty. Runs on Python 2.7
(the suite's own interpreter) and 3.
"""
from __future__ import print_function

import io
import json
import os
import sys

PASS = ("OK", "NON-STRICT", "INFORMATIONAL")
PASS_CLOSE = ("OK", "INFORMATIONAL")


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def main(outdir):
    with io.open(os.path.join(outdir, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    counts = {}
    failed = []
    total = 0
    for agent, cases in sorted(index.items()):
        for case_id in sorted(cases, key=case_key):
            r = cases[case_id]
            total += 1
            counts[r["behavior"]] = counts.get(r["behavior"], 0) + 1
            if r["behavior"] not in PASS or r["behaviorClose"] not in PASS_CLOSE:
                failed.append((agent, case_id, r))
    if total == 0:
        print("autobahn: the report has no cases", file=sys.stderr)
        return 2
    summary = ", ".join("%s %d" % (b, n) for b, n in sorted(counts.items()))
    print("autobahn: %d cases: %s" % (total, summary))
    for agent, case_id, r in failed:
        detail = {}
        try:
            with io.open(os.path.join(outdir, r["reportfile"]), encoding="utf-8") as f:
                detail = json.load(f)
        except (IOError, OSError, ValueError, KeyError):
            pass
        print("FAILED %s case %s: behavior %s, close %s, remote close code %s" % (
            agent, case_id, r["behavior"], r["behaviorClose"], r.get("remoteCloseCode")))
        for field in ("description", "expectation", "result", "resultClose"):
            if detail.get(field):
                print("    %s: %s" % (field, " ".join(detail[field].split())))
    if failed:
        print("autobahn: %d of %d cases failed" % (len(failed), total))
        return 1
    print("autobahn: all %d cases passed" % total)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: judge.py OUTDIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
