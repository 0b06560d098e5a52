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
  # The state outlives the user: root's, so an account that later gets the freed uid cannot
  # read the link key, the audit or the profiles' cookies (a reinstall gives it back).
  if [ -d "$STATE" ]; then chown -R -h root:root "$STATE" && chmod 0700 "$STATE"; fi
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

# 1. Debian packages, in one pass over the whole closure: `dpkg --unpack` of what is not yet
#    unpacked at the bundle's version, then `dpkg --configure -a`. Installed at that version
#    or newer: skipped (security updates win over the bundle). Unpacked but not configured
#    (an interrupted run): only configured, never unpacked again. A package whose
#    Pre-Depends are not configured yet is refused by the first pass and goes in the next
#    (systemd after libssl3, systemd-sysv after systemd), so a second and third pass are small.
#    No manuals or docs (the copyright files stay): an appliance reads none of them.
dpkg_opts=(--force-confdef --force-confold
  --path-exclude='/usr/share/doc/*' --path-include='/usr/share/doc/*/copyright'
  --path-exclude='/usr/share/man/*' --path-exclude='/usr/share/info/*')
declare -A deb_of ver_of
# debs/MANIFEST names each file's package and version ("NAME VERSION FILE"); a bundle
# without the file column has each .deb asked.
if awk 'NF != 3 { exit 1 }' "$here/debs/MANIFEST" 2>/dev/null; then
  while read -r pkg ver file; do deb_of[$pkg]=$here/debs/$file ver_of[$pkg]=$ver; done <"$here/debs/MANIFEST"
else
  for deb in "$here"/debs/*.deb; do
    read -r pkg ver < <(dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb")
    deb_of[$pkg]=$deb ver_of[$pkg]=$ver
  done
fi
# Sets to_unpack (files) and not_done (names) from one dpkg-query over the database.
classify() {
  to_unpack=() not_done=()
  declare -A st=() hv=()
  local pkg s v
  while IFS=$'\t' read -r pkg s v; do st[$pkg]=$s hv[$pkg]=$v; done \
    < <(dpkg-query -W -f='${Package}\t${db:Status-Status}\t${Version}\n' 2>/dev/null)
  for pkg in "${!deb_of[@]}"; do
    s=${st[$pkg]:-not-installed} v=${hv[$pkg]:-}
    [ "$s" = installed ] && [ "$v" = "${ver_of[$pkg]}" ] && continue   # the common case, no dpkg call
    case "$s" in
      installed) dpkg --compare-versions "$v" ge "${ver_of[$pkg]}" && continue ;;
      unpacked|half-configured|triggers-awaited|triggers-pending)
        if dpkg --compare-versions "$v" ge "${ver_of[$pkg]}"; then not_done+=("$pkg"); continue; fi ;;
    esac
    to_unpack+=("${deb_of[$pkg]}") not_done+=("$pkg")
  done
}
log=/var/log/handoff-install-dpkg.log
: >"$log"
export DEBIAN_FRONTEND=noninteractive
classify
if [ ${#not_done[@]} -gt 0 ]; then
  say "installing ${#not_done[@]} of ${#deb_of[@]} Debian packages from the bundle (dpkg, no network; log $log)"
  for pass in 1 2 3 4 5 6; do
    before=${#not_done[@]}
    if [ ${#to_unpack[@]} -gt 0 ]; then dpkg --unpack "${dpkg_opts[@]}" "${to_unpack[@]}" >>"$log" 2>&1 || true; fi
    dpkg --configure -a "${dpkg_opts[@]}" >>"$log" 2>&1 || true
    classify
    [ ${#not_done[@]} -eq 0 ] && break
    say "pass $pass: ${#not_done[@]} packages wait for their pre-dependencies; next pass"
    [ ${#not_done[@]} -lt "$before" ] || break
  done
  if [ ${#not_done[@]} -gt 0 ]; then
    grep -iE 'error|problem|depend' "$log" | tail -15 >&2
    die "dpkg could not install: ${not_done[*]} (see $log)"
  fi
  say "Debian packages installed"
else
  say "Debian packages: all ${#deb_of[@]} already installed"
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
