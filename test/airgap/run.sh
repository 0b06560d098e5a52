#!/usr/bin/env bash
# `npm run test:airgap`: the proof that an air-gapped Debian 12 site can run handoff from the
# bundle alone. A minimal Debian 12 root (debootstrap minbase, cached in the test's state),
# the bundle copied in, and inside it with the network cut (unshare -n: loopback only, which
# inside.sh asserts) install.sh, the daemon, a session driven over CDP, the stop, and a check
# that nothing is left. Needs root. Never skips: anything missing is a failure.
#   HANDOFF_AIRGAP_STATE  cache of the root and the bundle (default ~/.cache/handoff)
#   HANDOFF_BUNDLE        use this bundle instead of building one
#   HANDOFF_AIRGAP_KEEP=1 keep the root afterwards (its path is printed), to look at the logs
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "airgap: $*"; }
fail() { say "FAIL $*"; echo "0 passed, 1 failed"; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, unshare, chroot)"
for b in debootstrap unshare chroot mount ip; do command -v "$b" >/dev/null || fail "$b is missing (bash scripts/setup.sh --test installs it)"; done
state=${HANDOFF_AIRGAP_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/handoff}
mkdir -p "$state"

base=$(HANDOFF_ROOT_CACHE=$state bash scripts/bundle-root.sh) || fail "no Debian 12 minbase root"
if [ -n "${HANDOFF_BUNDLE:-}" ]; then
  bundle=$(realpath "$HANDOFF_BUNDLE")
else
  say "building the bundle"
  HANDOFF_ROOT_CACHE=$state bash scripts/bundle.sh "$state/bundle" || fail "npm run bundle"
  bundle=$(ls -t "$state"/bundle/handoff-*-debian12-amd64.tar.gz | head -1)
fi
[ -f "$bundle" ] || fail "no bundle at $bundle"
say "bundle $bundle ($(( $(stat -c %s "$bundle") / 1048576 )) MB)"

# Working on the later steps: HANDOFF_AIRGAP_REENTER=DIR re-enters a root kept (with
# HANDOFF_AIRGAP_KEEP=1) after its install, and skips the install.
if [ -n "${HANDOFF_AIRGAP_REENTER:-}" ]; then
  root="$HANDOFF_AIRGAP_REENTER/root"
  cp test/airgap/inside.sh test/airgap/drive.mjs "$root/root/"
  set -- --installed
else
work=$(mktemp -d /var/tmp/handoff-airgap.XXXXXX)
if [ "${HANDOFF_AIRGAP_KEEP:-}" = 1 ]; then trap 'say "kept $work"' EXIT; else trap 'rm -rf --one-file-system "$work"' EXIT; fi
root="$work/root"
cp -a "$base" "$root"
tar -xzf "$bundle" -C "$root/root"
# Only for working on install.sh itself: try the checkout's copy in an already built bundle.
[ "${HANDOFF_AIRGAP_INSTALL_SH:-}" = checkout ] && cp scripts/install.sh "$root"/root/handoff-*/install.sh
cp test/airgap/inside.sh test/airgap/drive.mjs "$root/root/"
set --
fi

# New network (loopback only), mount and pid namespaces: every mount below and every process
# inside end with the namespace. "/" of the chroot is a mount point, as on a real machine.
status=0
unshare --net --mount --pid --fork --propagation private /bin/bash -euc '
  r=$1
  ip link set lo up
  mount --bind "$r" "$r"
  mount -t proc proc "$r/proc"
  mount --rbind /sys "$r/sys"
  mount -t tmpfs -o mode=755,size=16m tmpfs "$r/dev"
  for d in null zero full random urandom tty; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done
  mkdir -p "$r/dev/pts" "$r/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
  ln -s pts/ptmx "$r/dev/ptmx"
  ln -s /proc/self/fd "$r/dev/fd"
  for i in 0 1 2; do ln -s "/proc/self/fd/$i" "$r/dev/$(echo stdin stdout stderr | cut -d" " -f$((i + 1)))"; done
  mount -t tmpfs -o mode=1777,size=512m tmpfs "$r/dev/shm"
  mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
  # pivot_root, not a bare chroot: the kernel refuses unprivileged user namespaces (bwrap,
  # Chromium) to a chrooted process, so the new tree becomes the root of the namespace.
  cd "$r" && mkdir -p .oldroot && pivot_root . .oldroot
  exec chroot . /bin/sh -c "umount -l /.oldroot && rmdir /.oldroot && exec /bin/bash /root/inside.sh \"\$@\"" inside "${@:2}"
' airgap "$root" "$@" || status=$?
[ "$status" = 0 ] || say "FAIL inside the air-gapped root (status $status)"
exit "$status"
