#!/usr/bin/env bash
# Prints the path of a clean minimal Debian 12 root (debootstrap --variant=minbase bookworm),
# made once and cached: the bundle computes its .deb closure against it, the air-gap test
# installs the bundle into a copy of it. Callers copy it; nobody changes the cached tree.
#   scripts/bundle-root.sh [CACHE_DIR]     (default $HANDOFF_ROOT_CACHE or ~/.cache/handoff)
set -euo pipefail
cache=${1:-${HANDOFF_ROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/handoff}}
root="$cache/bookworm-minbase"
mirror=${HANDOFF_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\/*\)$/\1/p;s/^deb \(http[^ ]*debian\/*\) bookworm .*/\1/p' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
if [ -f "$root/.complete" ]; then echo "$root"; exit 0; fi
command -v debootstrap >/dev/null || { echo "bundle-root: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bundle-root: debootstrap needs root" >&2; exit 1; }
mkdir -p "$cache"
rm -rf "$root.tmp"
echo "bundle-root: debootstrap --variant=minbase bookworm into $root (once; $mirror)" >&2
debootstrap --variant=minbase bookworm "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
  tail -20 "$cache/debootstrap.log" >&2; echo "bundle-root: debootstrap failed (log: $cache/debootstrap.log)" >&2; exit 1; }
# The security and updates suites too, so the closure has the versions a patched target has.
cat >"$root.tmp/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian*}/debian-security bookworm-security main
SRC
rm -rf "$root.tmp/var/cache/apt/archives/"*.deb
touch "$root.tmp/.complete"
mv "$root.tmp" "$root"
echo "$root"
