#!/usr/bin/env bash
# Runs tools/bench/sse_floor.c where tools/c1000k runs comet: the listen ports
# come from the comet.yaml it is given (-c FILE), the rest is ignored.
# usage: COMET_BIN=tools/bench/sse_floor.sh tools/c1000k
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "${1:-}" = -c ] || { echo "usage: $0 -c comet.yaml" >&2; exit 2; }
ports=$(grep -o 'listen: *[0-9.]*:[0-9]*' "$2" | sed 's/.*://')
front=$(echo "$ports" | sed -n 1p)
admin=$(echo "$ports" | sed -n 2p)
cc -O2 -pthread -o target/sse_floor tools/bench/sse_floor.c
exec target/sse_floor "$front" "$admin" "${FLOOR_THREADS:-52}"
