#!/bin/sh
# Runs every benchmark binary under $BUILD/bench and every bench/*.sh script.
# Each prints a table for people and writes bench/out/<name>.json.
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
mkdir -p bench/out
rc=0
for b in "$BUILD"/bench/*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    BUILD=$BUILD "$b" || rc=1
done
for s in bench/*.sh; do
    [ "$s" = bench/run.sh ] && continue
    [ -f "$s" ] || continue
    echo "== $s"
    BUILD=$BUILD sh "$s" || rc=1
done
exit $rc
