#!/bin/sh
# Rejects banned calls (like curl's checksrc) in project sources.
cd "$(dirname "$0")/.." || exit 1
bad=$(grep -rnE '\b(sprintf|strcpy|strcat|strtok|atoi|gets)\s*\(' src tests bench lab/guest --include='*.c' --include='*.h' | grep -vE '(snprintf|vsnprintf|asprintf|vasprintf)\s*\(' )
if [ -n "$bad" ]; then
    echo "lint: banned calls:"; echo "$bad"; exit 1
fi
if command -v clang-format >/dev/null 2>&1 && [ -f .clang-format ]; then
    n=0
    for f in $(find src tests bench -name '*.[ch]'); do
        clang-format --dry-run "$f" 2>&1 | grep -q warning && { echo "lint: format: $f"; n=$((n+1)); }
    done
    [ "$n" -eq 0 ] || echo "lint: $n files differ from .clang-format (advisory)"
fi
echo "lint: ok"
