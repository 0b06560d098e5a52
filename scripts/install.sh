#!/usr/bin/env bash
# Installs handoff from this bundle on Debian 12 (amd64) with no network:
#   ./install.sh               install, or upgrade in place (the state dir is kept)
#   ./install.sh --no-start    do not enable/start the systemd unit
#   ./install.sh --uninstall   remove everything but the state dir (and says where it is)
# Puts the Debian packages of debs/ in with dpkg (never downgrading one), the daemon and its
# Node runtime under /opt/handoff, a `handoff` system user, /etc/handoff/env, the systemd
# unit and /usr/local/bin/handoff, and prints each step.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=/opt/handoff
STATE=/var/lib/handoff
ETC=/etc/handoff
UNIT=/etc/systemd/system/handoff.service
WRAPPER=/usr/local/bin/handoff
USER_NAME=handoff
say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

mode=install start=1
for a in "$@"; do
  case "$a" in
    --uninstall) mode=uninstall ;;
    --no-start) start=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) die "unknown option $a (see --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*)"
systemd_up=0
[ -d /run/systemd/system ] && command -v systemctl >/dev/null && systemd_up=1

if [ "$mode" = uninstall ]; then
  if [ "$systemd_up" = 1 ] && [ -f "$UNIT" ]; then
    systemctl disable --now handoff.service >/dev/null 2>&1 || true
    say "stopped and disabled handoff.service"
  fi
  for p in "$UNIT" "$WRAPPER" "$PREFIX" "$ETC"; do
    if [ -e "$p" ] || [ -L "$p" ]; then rm -rf --one-file-system "$p"; say "removed $p"; fi
  done
  [ "$systemd_up" = 1 ] && systemctl daemon-reload
  if id -u "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME" >/dev/null 2>&1 && say "removed user $USER_NAME"; fi
  say "kept the state (audit database, downloads, recordings): $STATE"
  say "kept the Debian packages (chromium, xvfb, ffmpeg, ...): apt-get purge them if nothing else uses them"
  exit 0
fi

# --- install / upgrade -------------------------------------------------------------------
[ -f "$here/VERSION" ] && [ -x "$here/node/bin/node" ] && [ -d "$here/app/dist" ] || die "run install.sh from an unpacked bundle (VERSION, node/, app/, debs/)"
[ "$(dpkg --print-architecture)" = amd64 ] || die "this bundle is for amd64"
. /etc/os-release 2>/dev/null || true
[ "${VERSION_ID:-}" = 12 ] || say "warning: built for Debian 12, this is ${PRETTY_NAME:-unknown}"
version=$(cat "$here/VERSION")
started=$(date +%s)

# 1. Debian packages: those not installed, or installed older than the bundle's. A newer
#    one already there is kept (security updates win over the bundle).
pending() {
  todo=()
  local deb info pkg ver have
  for deb in "$here"/debs/*.deb; do
    info=$(dpkg-deb --show --showformat='${Package} ${Version}' "$deb")
    pkg=${info%% *} ver=${info#* }
    have=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$pkg" 2>/dev/null || true)
    if [ "${have%% *}" = ii ] && dpkg --compare-versions "${have#* }" ge "$ver"; then continue; fi
    todo+=("$deb")
  done
}
log=/var/log/handoff-install-dpkg.log
: >"$log"
pending
if [ ${#todo[@]} -gt 0 ]; then
  say "installing ${#todo[@]} Debian packages from the bundle (dpkg, no network; log $log)"
  # dpkg unpacks the whole set, then configures it in dependency order; a package whose
  # Pre-Depends were not configured yet is refused in one pass and goes in the next.
  for pass in 1 2 3 4 5; do
    DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "${todo[@]}" >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$log" 2>&1 || true
    pending
    [ ${#todo[@]} -eq 0 ] && break
    say "pass $pass left ${#todo[@]} packages; again"
  done
  if [ ${#todo[@]} -gt 0 ]; then
    grep -iE 'error|problem|depend' "$log" | tail -15 >&2
    die "dpkg could not install: ${todo[*]##*/} (see $log)"
  fi
else
  say "Debian packages: all $(ls "$here"/debs/*.deb | wc -l) already installed"
fi
for b in /usr/lib/chromium/chromium /usr/bin/Xvfb /usr/bin/ffmpeg /usr/bin/bwrap /usr/bin/fc-list; do
  [ -x "$b" ] || die "$b missing after dpkg"
done

# 2. The user the service runs as (no login, no home of its own but the state dir).
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
  say "created system user $USER_NAME"
fi
# The state is kept across upgrades and reinstalls; a reinstall's new user gets it back.
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
if [ "$(stat -c %U "$STATE")" != "$USER_NAME" ] || [ -n "$(find "$STATE" ! -user "$USER_NAME" -print -quit)" ]; then
  chown -R "$USER_NAME:$USER_NAME" "$STATE"
fi
say "state dir $STATE (kept on upgrade and uninstall)"

# 3. The daemon: staged next to the old one, then swapped in.
was_active=0
if [ "$systemd_up" = 1 ] && systemctl is-active --quiet handoff.service; then was_active=1; fi
old=$(cat "$PREFIX/VERSION" 2>/dev/null || true)
rm -rf "$PREFIX.new" "$PREFIX.old"
mkdir -p "$PREFIX.new"
cp -a "$here/app/." "$PREFIX.new/"
cp -a "$here/node" "$PREFIX.new/node"
cp "$here/VERSION" "$PREFIX.new/VERSION"
cp "$here/debs/MANIFEST" "$PREFIX.new/DEBS"
chown -R root:root "$PREFIX.new"
chmod -R go-w,a+rX "$PREFIX.new"
[ "$was_active" = 1 ] && systemctl stop handoff.service
[ -d "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
mv "$PREFIX.new" "$PREFIX"
rm -rf "$PREFIX.old"
if [ -n "$old" ]; then say "upgraded $PREFIX from $old to $version"; else say "installed handoff $version in $PREFIX"; fi
printf '#!/bin/sh\nexec %s/node/bin/node %s/bin/handoff.js "$@"\n' "$PREFIX" "$PREFIX" >"$WRAPPER"
chmod 755 "$WRAPPER"
say "command $WRAPPER (handoff doctor, handoff sessions, ...)"

# 4. Settings, kept if present (they may hold the API key: root and the service read them).
if [ ! -f "$ETC/env" ]; then
  install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
  cat >"$ETC/env" <<'ENV'
# handoff settings (see `handoff serve --help`). Off loopback an API key is required.
#HANDOFF_HOST=0.0.0.0
#HANDOFF_API_KEY=
#HANDOFF_PORT=9222
#HANDOFF_VNC_PORT=5901
ENV
  chown root:"$USER_NAME" "$ETC/env"
  chmod 0640 "$ETC/env"
  say "wrote $ETC/env (settings)"
else
  say "kept $ETC/env"
fi

# 5. The systemd unit, running the bundled Node.
sed "s|^ExecStart=\S*node |ExecStart=$PREFIX/node/bin/node |" "$PREFIX/systemd/handoff.service" >"$UNIT"
chmod 644 "$UNIT"
say "systemd unit $UNIT"
if [ "$systemd_up" = 1 ]; then
  systemctl daemon-reload
  if [ "$start" = 1 ] || [ "$was_active" = 1 ]; then
    systemctl enable --now handoff.service >/dev/null 2>&1 || die "systemctl enable --now handoff failed (journalctl -u handoff)"
    [ "$was_active" = 1 ] && systemctl restart handoff.service
    say "handoff.service enabled and running (journalctl -u handoff)"
  else
    say "start it: systemctl enable --now handoff"
  fi
else
  say "systemd is not running here: start by hand with"
  say "  setpriv --reuid=$USER_NAME --regid=$USER_NAME --init-groups --no-new-privs env STATE_DIRECTORY=$STATE $WRAPPER serve"
fi
say "done in $(( $(date +%s) - started )) s; check with: $WRAPPER doctor"
