#!/bin/sh
# Builds every libFuzzer target tests/fuzz/fuzz_*.c with clang
# (fuzzer + ASan + UBSan) into build/fuzz/ and runs each for FUZZ_SECONDS
# (default 30) over a scratch copy of its seed corpus
# (tests/fuzz/corpus/<name without fuzz_>), so the checked-in corpus only
# changes when someone copies a finding there on purpose.
# Prints one summary line per target; exits non-zero when a target fails
# to build or the fuzzer finds a crash (the reproducer stays in build/fuzz/).
#   FUZZ_SECONDS=60 FUZZ_TARGETS="fuzz_qmp" sh tests/fuzz/run.sh
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
SECONDS_EACH=${FUZZ_SECONDS:-30}
CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null 2>&1 || CLANG=clang-14
OUT=build/fuzz
mkdir -p "$OUT"
PKG=$(pkg-config --cflags --libs jansson libevent sqlite3 2>/dev/null)
SRCS=$(ls src/util/*.c src/qmp/*.c src/core/*.c 2>/dev/null)
# A target naming more modules in a "fuzz-srcs:" comment line gets them too.
summary=""
failed=0
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c)
    if [ -n "${FUZZ_TARGETS:-}" ]; then
        case " $FUZZ_TARGETS " in *" $name "*) ;; *) continue ;; esac
    fi
    bin="$OUT/$name"
    extra=$(sed -n 's|^ \* fuzz-srcs: \([^*]*\).*|\1|p' "$src")
    echo "== build $name"
    # shellcheck disable=SC2086
    if ! "$CLANG" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -Isrc -o "$bin" "$src" $SRCS $extra $PKG -lm -lpthread; then
        summary="$summary\nFAIL $name: build failed"
        failed=$((failed + 1))
        continue
    fi
    corpus="tests/fuzz/corpus/${name#fuzz_}"
    work="$OUT/$name-corpus"
    rm -rf "$work"
    mkdir -p "$work"
    [ -d "$corpus" ] && cp "$corpus"/* "$work"/ 2>/dev/null
    log="$OUT/$name.log"
    echo "== run $name for ${SECONDS_EACH}s (log $log)"
    "$bin" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/$name-" -print_final_stats=1 "$work" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    n=$(ls "$work" | wc -l)
    if [ "$rc" -ne 0 ]; then
        summary="$summary\nFAIL $name: exit $rc, reproducer $(ls "$OUT/$name-"* 2>/dev/null | grep -v -e corpus -e '\.log' | head -1)"
        tail -30 "$log"
        failed=$((failed + 1))
    else
        summary="$summary\nPASS $name: ${execs:-?} runs in ${SECONDS_EACH}s, $cov, corpus $n"
    fi
done
printf "== fuzz summary$summary\n"
[ "$failed" -eq 0 ]
