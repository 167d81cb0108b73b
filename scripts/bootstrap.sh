#!/bin/sh
# Installs, through apt, every Debian package Ferry needs to build, test and
# run its lab. Idempotent and silent when everything is already present.
# The list and the reason for each package live in docs/DEPENDENCIES.md.
set -e
PKGS="build-essential pkg-config libevent-dev libjansson-dev libsqlite3-dev libssl-dev \
qemu-system-x86 qemu-utils busybox-static cpio gzip clang \
libclang-rt-14-dev curl ca-certificates python3 iproute2 wrk"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "bootstrap: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
