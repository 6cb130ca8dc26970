#!/usr/bin/env bash
# A Debian sid root with CPython 3.13, 3.14, 3.15, 3.14-dbg and 3.15-dbg, for testing aprof against the
# interpreters of late 2026 (issue 11). Built once per machine, cached outside the checkout:
#   scripts/sid_root.sh [ROOT]      (default /var/cache/aprof/sid-root; prints ROOT when ready)
# Idempotent: an existing root with every interpreter is reused; a half-built one is redone.
# These interpreters need sid's C library: run them chrooted (chroot ROOT python3.14 ...).
set -euo pipefail
root=${1:-/var/cache/aprof/sid-root}
mirror=${APROF_SID_MIRROR:-http://deb.debian.org/debian}
pythons=(python3.13 python3.14 python3.15 python3.14-dbg python3.15-dbg)
extras=(python3-uvloop python3-aiohttp python3-uvicorn python3-starlette procps)

ready() {
    for p in "${pythons[@]}"; do [ -x "$root/usr/bin/$p" ] || return 1; done
    [ -f "$root/.aprof-ready" ]
}
if ready; then echo "$root"; exit 0; fi
# A finished root from an older version of this script: add what it lacks.
if [ -f "$root/.aprof-ready" ]; then
    echo "sid_root: adding ${pythons[*]} to $root" >&2
    if chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${pythons[@]}" "${extras[@]}" >/dev/null && ready; then
        echo "$root"
        exit 0
    fi
    echo "sid_root: could not complete $root: building it again" >&2
fi

command -v debootstrap >/dev/null || {
    echo "sid_root: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
rm -rf "$root"
mkdir -p "$(dirname "$root")"
echo "sid_root: debootstrap sid into $root (about 2 minutes)" >&2
debootstrap --variant=minbase sid "$root" "$mirror" >/dev/null
# The mirror's Release file is past its validity date: apt inside must not insist on it.
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99aprof-no-valid-until"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# debootstrap's --include trips over an alternative dependency; apt-get inside the root works.
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${pythons[@]}" "${extras[@]}" >/dev/null
touch "$root/.aprof-ready"
ready || { echo "sid_root: an interpreter is missing in $root" >&2; exit 1; }
echo "$root"
