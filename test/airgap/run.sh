#!/usr/bin/env bash
# `npm run test:airgap`: the proof that an air-gapped Debian 12 site can run handoff from the
# bundle alone. A minimal Debian 12 root (debootstrap minbase, cached in the test's state),
# the bundle copied in, and inside it with the network cut (unshare -n: loopback only, which
# inside.sh asserts) install.sh, the daemon, a session driven over CDP, the stop, and a check
# that nothing is left; then the same root booted with systemd as PID 1 (systemd.sh: the real
# unit, its exposure, stop, uninstall). Needs root and a cgroup2 hierarchy. Never skips:
# anything missing is a failure.
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
scripts=(test/airgap/lib.sh test/airgap/inside.sh test/airgap/systemd.sh test/airgap/drive.mjs)
if [ -n "${HANDOFF_AIRGAP_REENTER:-}" ]; then
  work=$HANDOFF_AIRGAP_REENTER
  root="$work/root"
  cp "${scripts[@]}" "$root/root/"
  set -- --installed
else
  work=$(mktemp -d /var/tmp/handoff-airgap.XXXXXX)
  root="$work/root"
  cp -a "$base" "$root"
  tar -xzf "$bundle" -C "$root/root"
  # Only for working on install.sh itself: try the checkout's copy in an already built bundle.
  [ "${HANDOFF_AIRGAP_INSTALL_SH:-}" = checkout ] && cp scripts/install.sh "$root"/root/handoff-*/install.sh
  cp "${scripts[@]}" "$root/root/"
  set --
fi
cg=
cleanup() {
  # systemd as PID 1 of its namespace: killing it ends every process inside.
  if [ -n "${sysd:-}" ] && kill -0 "$sysd" 2>/dev/null; then kill -KILL "$sysd"; sleep 1; fi
  [ -n "$cg" ] && [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  if [ "${HANDOFF_AIRGAP_KEEP:-}" = 1 ] || [ -n "${HANDOFF_AIRGAP_REENTER:-}" ]; then say "kept $work"
  else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
enter=$PWD/test/airgap/enter.sh

# 1. New network (loopback only), mount and pid namespaces: install.sh where systemd does not
#    run, the daemon started by hand as the unit would, a session, the stop, an upgrade.
status=0
unshare --net --mount --pid --fork --propagation private \
  /bin/bash "$enter" "$root" plain /bin/bash /root/inside.sh "$@" || status=$?
[ "$status" = 0 ] || { say "FAIL inside the air-gapped root (status $status)"; exit "$status"; }

# 2. The same root booted: systemd as PID 1 in network (loopback only), pid, mount, uts, ipc
#    and cgroup namespaces, its cgroup tree a fresh one under the host's cgroup2 hierarchy.
#    systemd.sh runs in there (nsenter): the real unit, its exposure, stop, uninstall.
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cg2" ] || fail "no cgroup2 hierarchy on this host: systemd as PID 1 needs one"
command -v nsenter >/dev/null || fail "nsenter is missing (util-linux)"
cg="$cg2/handoff-airgap-$$"
mkdir "$cg"
( echo "$BASHPID" >"$cg/cgroup.procs"
  exec unshare --net --mount --pid --uts --ipc --cgroup --fork --propagation private \
    /bin/bash "$enter" "$root" systemd /usr/bin/env container=handoff-airgap /lib/systemd/systemd --log-level=warning
) >"$work/systemd.log" 2>&1 &
outer=$!
sysd=
for _ in $(seq 1 300); do
  sysd=$(cat "/proc/$outer/task/$outer/children" 2>/dev/null | tr -d ' ' || true)
  [ -n "$sysd" ] && [ "$(cat "/proc/$sysd/comm" 2>/dev/null)" = systemd ] && break
  kill -0 "$outer" 2>/dev/null || break
  sleep 0.2
done
[ -n "$sysd" ] && [ "$(cat "/proc/$sysd/comm" 2>/dev/null)" = systemd ] || { cat "$work/systemd.log"; fail "systemd did not start as PID 1 in the root"; }
in_systemd() { nsenter -t "$sysd" -a env -i "$@"; }
in_systemd /bin/bash /root/systemd.sh || status=$?
# A clean shutdown: systemd stops every unit, then PID 1 exits and the namespace with it.
in_systemd /bin/systemctl poweroff >/dev/null 2>&1 || true
for _ in $(seq 1 150); do kill -0 "$outer" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$outer" 2>/dev/null; then say "FAIL systemd did not power off in 30 s"; status=1
else say "ok   systemd powered off"; fi
left=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')
if [ -n "${left// /}" ]; then say "FAIL processes left in the root's cgroup: $left"; status=1
else say "ok   no process left in the root's cgroup"; fi
[ "$status" = 0 ] || { say "FAIL under systemd in the air-gapped root (status $status)"; exit "$status"; }
say "passed: installed, run by hand and under systemd, upgraded, uninstalled, with no network"
