#!/bin/sh
# make demo: a rolling maintenance over a three-host lab on loopback
# (issue 5 item 5). Starts ferryd (temp config, DB and admin token) and
# three agents on 127.0.1.1-3 registered with it, boots five 128 MiB guests
# running memload in project "demo", checks every guest's integrity, then
# runs `ferry plan create --label zone=demo --vcpu-overcommit 2` (the agents
# register with --label zone=demo) with a harmless action (sleep 1, then the
# agent restarts itself by re-exec) and a health-check command, and watches
# it live. Ends with a report:
# per host its duration, per migration total time / downtime / bytes, every
# guest's integrity verified where it runs now, an overall verdict and the
# wall time. Exit status non-zero when the plan did not complete or a guest
# failed verification.
#
# Every process it starts gets its own process group (setsid) and is killed
# by group at exit; QEMU processes are children of the agents (same group).
# Ports are derived from $$ and checked free, so concurrent runs do not clash.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
LAB="$ROOT/$BUILD/lab"
FERRY="$ROOT/$BUILD/ferry"
FERRYD="$ROOT/$BUILD/ferryd"
AGENT="$ROOT/$BUILD/ferry-agent"
WORK=$(mktemp -d /tmp/ferry-demo.XXXXXX)
PIDS=""
T0=$(date +%s%N)
PLAN_TIMEOUT_S=${PLAN_TIMEOUT_S:-210}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
elapsed() { awk -v ms="$(ms_since "$T0")" 'BEGIN { printf "%.1f", ms / 1000 }'; }
say() { echo "[$(elapsed)s] $*"; }

cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do kill -9 "-$p" 2>/dev/null || true; done
    # Safety net: anything else still naming this run's directory (a QEMU
    # that outlived its agent's group). Our own shell's group is never hit.
    me=$(ps -o pgid= -p $$ | tr -d ' ')
    for d in /proc/[0-9]*; do
        if grep -qaF "$WORK/" "$d/cmdline" 2>/dev/null; then
            g=$(ps -o pgid= -p "${d#/proc/}" 2>/dev/null | tr -d ' ')
            if [ -n "$g" ] && [ "$g" != "$me" ]; then kill -9 "-$g" 2>/dev/null || true; fi
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "demo: $*" >&2
    for f in "$WORK"/*.log; do
        [ -f "$f" ] || continue
        echo "--- tail of $(basename "$f")" >&2
        tail -n 15 "$f" >&2
    done
    echo "== VERDICT: FAIL ($*) — wall time $(elapsed) s"
    exit 1
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() { # base
    p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}

# ---- ports, config, tokens
DPORT=$(pick_port $((30000 + $$ % 15000)))
APORT=$(pick_port $((DPORT + 1)))
URL="http://127.0.0.1:$DPORT"
CONF="$WORK/ferryd.conf"
TOKF="$WORK/admin.token"
AGTOK="$WORK/agent.token"
cat >"$CONF" <<EOF
listen = 127.0.0.1:$DPORT
db = $WORK/ferryd.db
bootstrap_token_file = $TOKF
heartbeat_interval_ms = 1000
heartbeat_missed = 10
EOF

api() { # method path
    curl -sf -X "$1" -H "Authorization: Bearer $(cat "$TOKF")" "$URL$2"
}

echo "== Ferry demo: rolling maintenance of a three-host lab on loopback"
"$FERRYD" --config "$CONF" --add-token agent infra agent >"$AGTOK" 2>>"$WORK/ferryd.log" ||
    die "ferryd --add-token failed"

setsid "$FERRYD" --config "$CONF" 2>>"$WORK/ferryd.log" &
PIDS="$PIDS $!"
i=0
until curl -sf "$URL/v1/health" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || die "ferryd did not answer on $URL"
    sleep 0.1
done
[ -s "$TOKF" ] || die "ferryd wrote no admin token"
say "ferryd on $URL (temp DB, bootstrap admin token)"

HOSTS="host-a host-b host-c"
host_addr() {
    case $1 in host-a) echo 127.0.1.1 ;; host-b) echo 127.0.1.2 ;; host-c) echo 127.0.1.3 ;; esac
}
agent_url() { echo "http://$(host_addr "$1"):$APORT"; }

for h in $HOSTS; do
    mkdir -p "$WORK/$h"
    setsid "$AGENT" --listen "$(host_addr $h):$APORT" --state-dir "$WORK/$h" --name "$h" \
        --lab-dir "$LAB" --coordinator "$URL" --agent-token-file "$AGTOK" --label zone=demo \
        >"$WORK/$h.log" 2>&1 &
    PIDS="$PIDS $!"
done
for h in $HOSTS; do
    i=0
    until curl -sf "$(agent_url $h)/v1/health" >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || die "agent $h did not answer"
        sleep 0.1
    done
done
say "agents host-a, host-b, host-c on 127.0.1.1-3:$APORT, registered with ferryd"

# ---- guests: name host ws_mib rate(pages/s). Five: every agent reports
# this machine's vCPUs (nproc) and with one host down the other two must
# hold every guest — on a 2-CPU machine that is 4 one-vCPU guests without
# overcommit, so the plan allows 2 vCPUs per CPU (--vcpu-overcommit 2;
# without it the fifth guest is refused before anything starts: 409
# unplaceable, no_room).
GUESTS="g1:host-a:16:1000 g2:host-a:32:2000 g3:host-b:24:1500 g4:host-c:32:1000 g5:host-b:16:500"
NG=5
NAMES=""
for g in $GUESTS; do
    IFS=: read -r name h ws rate <<EOF
$g
EOF
    NAMES="$NAMES $name"
    body="{\"name\":\"$name\",\"project\":\"demo\",\"memory_mib\":128,\"vcpus\":1,\"cmdline\":\"console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=$ws ferry.rate=$rate\"}"
    curl -sf -X POST "$(agent_url $h)/v1/instances" -d "$body" >/dev/null ||
        die "cannot create guest $name on $h"
    echo "   $name on $h: 128 MiB, memload working set $ws MiB, $rate pages/s"
done
# FERRY-READY is looked for in the whole console output (since offset 0):
# `ferry console --wait` only sees what is printed after it attaches.
for g in $GUESTS; do
    name=${g%%:*}; h=$(echo "$g" | cut -d: -f2)
    i=0
    until curl -sf "$(agent_url $h)/v1/instances/$name/console?since=0" |
        jq -r .text 2>/dev/null | grep -q FERRY-READY; do
        i=$((i + 1)); [ $i -lt 450 ] || die "guest $name did not report FERRY-READY"
        sleep 0.2
    done
done
say "$NG guests booted (FERRY-READY)"

# ferryd learns the guests from the agents' registrations (every heartbeat).
i=0
until [ "$(api GET /v1/hosts | jq '[.hosts[].instances[]] | length' 2>/dev/null)" = "$NG" ]; do
    i=$((i + 1)); [ $i -lt 150 ] || die "ferryd does not list the $NG guests"
    sleep 0.2
done

# where NAME runs now, according to ferryd: its host's agent URL and host name
where() {
    api GET /v1/hosts | jq -r --arg n "$1" \
        '.hosts[] | select(any(.instances[]; .name == $n)) | "\(.agent_url) \(.name)"' | head -n 1
}
verify() { # agent_url name -> prints ok|FAIL detail
    out=$("$FERRY" console --agent "$1" "$2" --send verify --wait FERRY-RESULT --wait-ms 30000 2>&1)
    okv=$(printf '%s\n' "$out" | sed -n 's/^.*FERRY-RESULT //p' | head -n 1 | jq -r .ok 2>/dev/null)
    if [ "$okv" = true ]; then
        printf '%s\n' "$out" | sed -n 's/^.*FERRY-RESULT //p' | head -n 1 |
            jq -r '"ok    (\(.pages) pages checked, 0 bad, pass \(.pass))"'
    else
        echo "FAIL  $(printf '%s' "$out" | tail -n 1)"
    fi
}

echo "== integrity before the maintenance"
for n in $NAMES; do
    set -- $(where "$n")
    [ $# -eq 2 ] || die "ferryd does not place $n"
    r=$(verify "$1" "$n")
    echo "   $n on $2: $r"
    case $r in ok*) ;; *) die "$n failed verification before the plan" ;; esac
done

# ---- the rolling maintenance
echo "== rolling maintenance of every host labelled zone=demo: drained, 'sleep 1; echo patched',"
echo "   agent restarted, health-check command, returned (2 vCPUs per CPU allowed)"
TP=$(date +%s%N)
created=$("$FERRY" plan create --label zone=demo --command 'sleep 1; echo patched' --reboot \
    --health-timeout 60 --health-command 'test -d /proc && echo healthy' --vcpu-overcommit 2 \
    --url "$URL" --token-file "$TOKF" --json) || {
    curl -s -X POST -H "Authorization: Bearer $(cat "$TOKF")" "$URL/v1/plans" \
        -d '{"label":"zone=demo","vcpu_overcommit":2,"action":{"command":"true"}}' |
        jq -c '.unplaced // .error' 2>/dev/null
    die "plan create refused"
}
ID=$(printf '%s' "$created" | jq -r .id)
say "plan $ID: $(printf '%s' "$created" | jq -r '"\(.groups) group(s), \(.moves) planned move(s), estimate \(.estimate_ms / 1000) s"')"
# In the background + wait, so that INT/TERM reach the trap at once
# (timeout runs in its own process group: killed by group at exit too).
timeout "$PLAN_TIMEOUT_S" "$FERRY" plan watch "$ID" --url "$URL" --token-file "$TOKF" &
WPID=$!
PIDS="$PIDS $WPID"
wait "$WPID"
wrc=$?
PLAN_MS=$(ms_since "$TP")
PLAN=$(api GET "/v1/plans/$ID") || die "cannot read plan $ID"
STATE=$(printf '%s' "$PLAN" | jq -r .state)
[ $wrc -eq 124 ] && echo "   (plan watch stopped after ${PLAN_TIMEOUT_S}s: state $STATE)"

# ---- final report
FAILS=0
echo
echo "================ Ferry demo report ================"
printf 'plan %s: %s in %s s (%s)\n' "$ID" "$STATE" \
    "$(awk -v ms="$PLAN_MS" 'BEGIN { printf "%.1f", ms / 1000 }')" \
    "$(printf '%s' "$PLAN" | jq -r 'if .last_error and .last_error != "" then "last error: " + .last_error else "no alerts" end')"
[ "$STATE" = completed ] || FAILS=$((FAILS + 1))
echo "hosts (in plan order; duration = drain + action + agent restart + health check):"
printf '%s' "$PLAN" | jq -r '.hosts[] | [.host, .group, .step, .state, (.duration_ms // 0), (.drain_ms // 0)] | @tsv' |
    awk -F'\t' '{ printf "  %-8s group %s  %-9s %-4s  %6.1f s   (drain %5.1f s)\n", $1, $2, $3, $4, $5 / 1000, $6 / 1000 }'
echo "maintenance action and health check of each host (as the plan recorded them):"
printf '%s' "$PLAN" | jq -r '.hosts[] | "  \(.host)  action \(.action.state // "?") exit \(.action.exit_status // "?") output \((.action.output // "") | gsub("\n"; " ") | .[0:40])  check \(.check.state // "?") output \((.check.output // "") | gsub("\n"; " ") | .[0:40])"'
echo "agent restarted after its action (GET AGENT/v1/maintenance: agent_started_ms):"
for h in $HOSTS; do
    a=$(printf '%s' "$PLAN" | jq -r --arg h "$h" '.hosts[] | select(.host == $h) | .action.finished_ms // 1e18')
    curl -sf "$(agent_url $h)/v1/maintenance" | jq -r --arg h "$h" --argjson fin "$a" '
        "  \($h)  " + (if (.agent_started_ms // 0) >= $fin then "restarted after it" else "NOT restarted" end)' ||
        echo "  $h  (no answer)"
done
echo "migrations (QEMU figures: total time, downtime, RAM bytes transferred; guest disk"
echo "throughput kept and p99 ratio against the 10 s before, from the agent's query-blockstats):"
printf '%s' "$PLAN" | jq -r '.migrations[] | [.id, (.guest_impact.throughput_retained_pct // "-"),
    (.guest_impact.p99_latency_ratio // "-")] | @tsv' |
while IFS="$(printf '\t')" read -r mid kept p99; do
    api GET "/v1/migrations/$mid" | jq -r --arg k "$kept" --arg p "$p99" '[.instance, .source,
        .destination, .state, (.result.total_time_ms // -1), (.downtime_ms // -1),
        (.result.ram_transferred // -1), $k, $p] | @tsv'
done | awk -F'\t' '{ printf "  %-4s %s -> %s  %-9s  total %5.2f s  downtime %4d ms  %7.1f MiB (%d bytes)  disk kept %s %%  p99 %sx\n",
    $1, $2, $3, $4, $5 / 1000, $6, $7 / 1048576, $7, $8, $9 }'
NMIG=$(printf '%s' "$PLAN" | jq '.migrations | length')
NOK=$(api GET /v1/migrations | jq '[.migrations[] | select(.state == "succeeded")] | length')
echo "  $NMIG migration(s) in the plan, $NOK succeeded in ferryd's records"
echo "integrity after the maintenance (each guest verified where it runs now):"
for n in $NAMES; do
    set -- $(where "$n")
    if [ $# -ne 2 ]; then
        echo "   $n: FAIL (ferryd does not place it)"; FAILS=$((FAILS + 1)); continue
    fi
    r=$(verify "$1" "$n")
    echo "   $n on $2: $r"
    case $r in ok*) ;; *) FAILS=$((FAILS + 1)) ;; esac
done
echo "==================================================="
if [ "$FAILS" -eq 0 ]; then
    echo "== VERDICT: PASS — plan completed, $NG/$NG guests intact — wall time $(elapsed) s"
    exit 0
fi
echo "== VERDICT: FAIL ($FAILS problem(s)) — wall time $(elapsed) s"
exit 1
