#!/usr/bin/env bash
# Installs what handoff needs and is missing, then builds. Safe to run again: when
# everything is in place it does nothing and says so in one line.
#   scripts/setup.sh            system packages for running + npm ci + build
#   scripts/setup.sh --test     also the packages the test suite uses
#   scripts/setup.sh --bench    --test and the benchmarks' reference programs (npm run bench)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_bench=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --bench) want_test=1; want_bench=1 ;;
    *) echo "setup: unknown option $a" >&2; exit 2 ;;
  esac
done
say() { echo "setup: $*"; }
did=0

# 1. Node
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  say "Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))."
  exit 1
fi

# 2. System packages (Debian names), checked by the files they provide.
missing=()
need() { [ -e "$1" ] || command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need /usr/lib/chromium/chromium chromium
need Xvfb xvfb
need ffmpeg ffmpeg
need fc-list fontconfig
need /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf fonts-dejavu-core
need /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf fonts-liberation
need bwrap bubblewrap          # each session runs in its own filesystem sandbox
if [ "$want_test" = 1 ]; then
  need vncsnapshot vncsnapshot  # a real VNC client that decodes Tight and ZRLE
  need systemd-analyze systemd  # checks systemd/handoff.service
  need chattr e2fsprogs         # fault tests: the audit database made immutable
  need mount mount              # fault tests: the state dir on a small tmpfs
  need umount mount
  need chromedriver chromium-driver  # selenium-webdriver attaches through a session's debug port
  need haproxy haproxy          # fleet test and bench: two hosts behind deploy/haproxy/haproxy.cfg
  need debootstrap debootstrap  # npm run bundle / test:airgap: a clean minimal Debian 12 root
  need ip iproute2              # test:airgap: loopback up in the cut-off network namespace
fi
if [ "$want_bench" = 1 ]; then
  need x11vnc x11vnc            # bench/vnc.ts: the reference VNC server on the session's display
fi
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"
  else
    say "missing system packages: ${missing[*]}"
    say "run this, then try again:  sudo apt-get update && sudo $cmd"
    exit 1
  fi
  say "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo $cmd -qq >/dev/null
  did=1
fi

# 3. npm packages, when the lock file's content changed since the last install (not its
#    mtime: a checkout touches it). npm ci empties node_modules first, so never through a
#    symlink: that would empty the tree it points to (another checkout's).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.handoff-lock.sha256 2>/dev/null)" != "$lock_sum" ]; then
  if [ -L node_modules ]; then
    say "node_modules is a symlink and package-lock.json changed: run npm ci where it points, or replace the link with a directory"
    exit 1
  fi
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.handoff-lock.sha256
  did=1
fi

# 4. Build, when a source is newer than the build.
if [ ! -f dist/cli/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json package.json -newer dist/cli/main.js -print -quit)" ]; then
  say "building (tsc)"
  npm run --silent build
  touch dist/cli/main.js
  did=1
fi

if [ "$did" = 0 ]; then say "everything is in place"; fi
