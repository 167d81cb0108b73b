#!/bin/sh
# Builds the lab guest: a Debian cloud kernel and an initramfs holding
# busybox-static, lab/guest/init and the guest workloads (lab/guest/*.c with
# the headers they share, lab/guest/*.h;
# each compiled statically into /bin/<name>).
#
#   $BUILD/lab/vmlinuz      kernel, taken from Debian's linux-image-*-cloud-amd64
#                           package (downloaded and unpacked, never installed)
#   $BUILD/lab/initrd.img   cpio newc + gzip
#   $BUILD/lab/cache/       downloaded .deb, unpacked tree, build scratch
#
# Idempotent: each output keeps a hash of its inputs beside it
# (<output>.inputs) and is rebuilt only when that hash changes. Silent when
# everything is cached. Called by `make lab`, `make check`, `make demo`.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
OUT="$BUILD/lab"
CACHE="$OUT/cache"
META=linux-image-cloud-amd64
# Kernel modules the guest needs for virtio disks (loaded by init, with their
# dependencies, when they are modules rather than built in).
WANT_MODULES="virtio_pci virtio_blk"
BUSYBOX=${BUSYBOX:-/bin/busybox}
CC=${LAB_CC:-gcc}

mkdir -p "$CACHE"
# Several `make check` runs may share one tree: build one at a time.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi

say() { echo "lab: $*" >&2; }
die() { echo "lab: error: $*" >&2; exit 1; }

# hash_of FILE... — one hex digest over the names and contents of FILEs.
hash_of() {
    for f in "$@"; do
        printf '%s\n' "$f"
        cat "$f"
    done | sha256sum | cut -d' ' -f1
}
# up_to_date OUTPUT HASH — true when OUTPUT exists and was built from HASH.
up_to_date() {
    [ -f "$1" ] && [ -f "$1.inputs" ] && [ "$(cat "$1.inputs")" = "$2" ]
}

# ---- kernel package -------------------------------------------------------
resolve_kernel_pkg() {
    apt-cache depends "$META" 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
PKG=$(resolve_kernel_pkg || true)
if [ -z "$PKG" ]; then
    # apt knows nothing yet (fresh container): refresh the lists once.
    say "apt-cache knows no $META; running apt-get update"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    PKG=$(resolve_kernel_pkg || true)
fi
if [ -z "$PKG" ]; then
    # Offline: fall back to a package downloaded earlier.
    DEB=$(ls "$CACHE"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort | tail -1)
    [ -n "$DEB" ] || die "cannot resolve $META through apt and nothing is cached"
    PKG=$(basename "$DEB" | cut -d_ -f1)
    say "apt unavailable; using cached $(basename "$DEB")"
fi

DEB=$(ls "$CACHE/${PKG}"_*.deb 2>/dev/null | sort | tail -1 || true)
if [ -z "$DEB" ]; then
    say "downloading $PKG"
    # apt-get download writes into the current directory. Run as root it
    # warns that _apt cannot write there; that warning is harmless.
    (cd "$CACHE" && apt-get download -q "$PKG" >"download.log" 2>&1) ||
        { cat "$CACHE/download.log" >&2; die "apt-get download $PKG failed"; }
    DEB=$(ls "$CACHE/${PKG}"_*.deb 2>/dev/null | sort | tail -1)
    [ -n "$DEB" ] || die "apt-get download produced no .deb for $PKG"
fi
DEB_NAME=$(basename "$DEB") # name_version_arch.deb: names the exact kernel build

TREE="$CACHE/kernel-tree"
if ! up_to_date "$TREE/.unpacked" "$DEB_NAME"; then
    rm -rf "$TREE"
    mkdir -p "$TREE"
    dpkg-deb -x "$DEB" "$TREE"
    echo "$DEB_NAME" >"$TREE/.unpacked.inputs"
    : >"$TREE/.unpacked"
fi
KVER=$(ls "$TREE/lib/modules" | head -1)
[ -n "$KVER" ] || die "no lib/modules in $DEB_NAME"
MODDIR="$TREE/lib/modules/$KVER"

# ---- vmlinuz ---------------------------------------------------------------
VMLINUZ_SRC=$(ls "$TREE"/boot/vmlinuz-* | head -1)
[ -f "$VMLINUZ_SRC" ] || die "no boot/vmlinuz-* in $DEB_NAME"
H=$(printf '%s\n' "$DEB_NAME" "$(basename "$VMLINUZ_SRC")" | sha256sum | cut -d' ' -f1)
if ! up_to_date "$OUT/vmlinuz" "$H"; then
    cp "$VMLINUZ_SRC" "$OUT/vmlinuz.tmp"
    mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
    echo "$H" >"$OUT/vmlinuz.inputs"
    say "kernel $KVER -> $OUT/vmlinuz"
fi

# ---- guest workloads (static C) ---------------------------------------------
mkdir -p "$OUT/bin"
BINS=""
for src in lab/guest/*.c; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c)
    bin="$OUT/bin/$name"
    H=$(hash_of "$src" lab/guest/*.h lab/build.sh; "$CC" --version | head -1)
    H=$(printf '%s\n' "$H" | sha256sum | cut -d' ' -f1)
    if ! up_to_date "$bin" "$H"; then
        "$CC" -std=c11 -D_GNU_SOURCE -static -O2 -Wall -Wextra -Wshadow \
            -Wstrict-prototypes -Wmissing-prototypes -Wvla \
            -o "$bin.tmp" "$src"
        mv "$bin.tmp" "$bin"
        echo "$H" >"$bin.inputs"
        say "built $bin"
    fi
    BINS="$BINS $bin"
done

# ---- modules: resolve WANT_MODULES and their deps to an ordered load list ----
# Reads depends= from each module's .modinfo (no modinfo/depmod needed).
mod_path() {
    find "$MODDIR/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" \) 2>/dev/null | head -1
}
mod_deps() {
    p=$(mod_path "$1")
    case "$p" in
    *.xz) xz -dc "$p" ;;
    *) cat "$p" ;;
    esac | tr '\0' '\n' | sed -n 's/^depends=//p' | head -1 | tr ',' ' '
}
LOAD_ORDER=""
add_module() { # depth-first: dependencies before dependants
    case " $LOAD_ORDER " in *" $1 "*) return 0 ;; esac
    if [ -z "$(mod_path "$1")" ]; then
        # Built in (listed in modules.builtin) or absent: nothing to load.
        return 0
    fi
    for d in $(mod_deps "$1"); do
        add_module "$d"
    done
    LOAD_ORDER="$LOAD_ORDER $1"
}
for m in $WANT_MODULES; do
    if grep -q "/$m\.ko" "$MODDIR/modules.builtin" 2>/dev/null; then
        continue
    fi
    add_module "$m"
done

# ---- initramfs ---------------------------------------------------------------
H=$( (
    hash_of lab/build.sh lab/guest/init "$BUSYBOX"
    for b in $BINS; do cat "$b.inputs"; done
    echo "$DEB_NAME $LOAD_ORDER"
) | sha256sum | cut -d' ' -f1)
if ! up_to_date "$OUT/initrd.img" "$H"; then
    ROOTFS="$CACHE/rootfs"
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS/bin" "$ROOTFS/dev" "$ROOTFS/proc" "$ROOTFS/sys" \
        "$ROOTFS/tmp" "$ROOTFS/lib/modules"
    cp "$BUSYBOX" "$ROOTFS/bin/busybox"
    cp lab/guest/init "$ROOTFS/init"
    chmod 755 "$ROOTFS/init" "$ROOTFS/bin/busybox"
    for b in $BINS; do
        cp "$b" "$ROOTFS/bin/"
    done
    : >"$ROOTFS/lib/modules/load.list"
    for m in $LOAD_ORDER; do
        p=$(mod_path "$m")
        case "$p" in
        *.xz) xz -dc "$p" >"$ROOTFS/lib/modules/$m.ko" ;; # busybox insmod can't read xz
        *) cp "$p" "$ROOTFS/lib/modules/$m.ko" ;;
        esac
        echo "$m" >>"$ROOTFS/lib/modules/load.list"
    done
    (cd "$ROOTFS" && find . | LC_ALL=C sort |
        cpio -o -H newc -R 0:0 --quiet) | gzip -9 >"$OUT/initrd.img.tmp"
    mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
    echo "$H" >"$OUT/initrd.img.inputs"
    say "initramfs -> $OUT/initrd.img ($(wc -c <"$OUT/initrd.img") bytes; modules:${LOAD_ORDER:- none})"
fi
