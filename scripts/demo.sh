#!/bin/sh
# make demo: a two-host lab on loopback. Boots a guest running memload on
# host A, live-migrates it to host B and back with live progress, and
# prints total time, downtime and the guest's own integrity verdict.
set -e
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
LAB="$ROOT/$BUILD/lab"
FERRY="$ROOT/$BUILD/ferry"
WORK=$(mktemp -d /tmp/ferry-demo.XXXXXX)
A=http://127.0.1.1:7701
B=http://127.0.1.2:7701
PIDS=""

cleanup() {
    for p in $PIDS; do kill -9 "-$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

start_agent() { # name addr
    mkdir -p "$WORK/$1"
    setsid "$ROOT/$BUILD/ferry-agent" --listen "$2:7701" --state-dir "$WORK/$1" --name "$1" \
        --lab-dir "$LAB" >"$WORK/$1.log" 2>&1 &
    PIDS="$PIDS $!"
}

echo "== Ferry demo: two hosts on loopback (host-a 127.0.1.1, host-b 127.0.1.2)"
start_agent host-a 127.0.1.1
start_agent host-b 127.0.1.2
for i in $(seq 1 50); do
    curl -sf "$A/v1/health" >/dev/null 2>&1 && curl -sf "$B/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
done

echo "== booting guest 'demo' (256 MiB, memload: 64 MiB working set, 4000 pages/s) on host-a"
curl -sf -X POST "$A/v1/instances" -d '{"name":"demo","memory_mib":256,"cmdline":"console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=64 ferry.rate=4000"}' >/dev/null
"$FERRY" console --agent "$A" demo --wait FERRY-READY --wait-ms 60000

verdict() { # agent
    "$FERRY" console --agent "$1" demo --send verify --wait FERRY-RESULT --wait-ms 30000
}

echo "== integrity before: $(verdict "$A")"
echo "== live migration host-a -> host-b (bandwidth cap 64 MiB/s, downtime limit 300 ms)"
"$FERRY" migrate --from "$A" --to "$B" --bandwidth 67108864 --downtime 300 demo
echo "== integrity on host-b: $(verdict "$B")"
echo "== live migration host-b -> host-a"
"$FERRY" migrate --from "$B" --to "$A" --bandwidth 67108864 --downtime 300 demo
echo "== integrity on host-a: $(verdict "$A")"
echo "== instances now:"
echo "host-a:"; "$FERRY" instances --agent "$A"
echo "host-b:"; "$FERRY" instances --agent "$B"
echo "== demo done"
