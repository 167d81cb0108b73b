#!/bin/sh
# Runs every test binary (unit, fuzz-corpus replay, integration; with
# SAN_BUILD the unit tests and replays again under ASan+UBSan; with
# TSAN_BUILD and TSAN_TESTS those tests under ThreadSanitizer) and ends
# with one line: "N passed, N failed, N skipped".
# A binary that exits non-zero without reporting a FAIL counts as one failure.
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
LOGDIR="$BUILD/test-logs"
mkdir -p "$LOGDIR"
pass=0; fail=0; skip=0
T_START=$(date +%s)
run_one() {
    bin=$1; shift
    name=$(basename "$bin")
    log="$LOGDIR/$(echo "$bin" | tr '/' '_').log"
    echo "== $name"
    t0=$(date +%s)
    "$bin" "$@" >"$log" 2>"$log.err"
    rc=$?
    cat "$log"
    echo "-- $name: $(( $(date +%s) - t0 )) s"
    p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc (stderr in $log.err)"
        tail -20 "$log.err"
        f=1
    elif [ "$f" -ne 0 ]; then
        echo "-- stderr tail of $name:"; tail -20 "$log.err"
    fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
}
for t in "$BUILD"/tests/unit/test_*; do
    [ -x "$t" ] && run_one "$t"
done
for t in "$BUILD"/tests/fuzz/*-replay; do
    [ -x "$t" ] || continue
    name=$(basename "$t" -replay)
    run_one "$t" "tests/fuzz/corpus/${name#fuzz_}"
done
if [ -n "${SAN_BUILD:-}" ] && [ -d "$SAN_BUILD/tests" ]; then
    echo "== sanitizer build ($SAN_BUILD): unit tests and fuzz corpora under ASan+UBSan"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    for t in "$SAN_BUILD"/tests/unit/test_*; do
        [ -x "$t" ] && run_one "$t"
    done
    for t in "$SAN_BUILD"/tests/fuzz/*-replay; do
        [ -x "$t" ] || continue
        name=$(basename "$t" -replay)
        run_one "$t" "tests/fuzz/corpus/${name#fuzz_}"
    done
fi
if [ -n "${TSAN_BUILD:-}" ] && [ -n "${TSAN_TESTS:-}" ]; then
    # Every process of these runs (the test and the ferryd it starts)
    # writes a ThreadSanitizer report to its own file under tsan/: any
    # file there is a failure, whichever process found the race.
    echo "== ThreadSanitizer build ($TSAN_BUILD): ferryd's threaded parts"
    tsan_dir=$(cd "$LOGDIR" && pwd)/tsan
    rm -rf "$tsan_dir"
    mkdir -p "$tsan_dir"
    main_build=$BUILD
    BUILD=$TSAN_BUILD # the tests start the ferryd of their own build
    export BUILD
    export TSAN_OPTIONS="suppressions=$ROOT/tests/tsan.supp log_path=$tsan_dir/report"
    for t in $TSAN_TESTS; do
        [ -x "$TSAN_BUILD/$t" ] && run_one "$TSAN_BUILD/$t"
    done
    unset TSAN_OPTIONS
    BUILD=$main_build
    for r in "$tsan_dir"/report.*; do
        [ -f "$r" ] || continue
        echo "FAIL ThreadSanitizer report $r:"
        head -40 "$r"
        fail=$((fail + 1))
    done
fi
if [ "${FERRY_SKIP_INTEGRATION:-0}" != 1 ]; then
    for t in "$BUILD"/tests/integration/test_*; do
        [ -x "$t" ] && run_one "$t"
    done
fi
echo "-- all tests: $(( $(date +%s) - T_START )) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
