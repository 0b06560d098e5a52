#!/bin/bash
# Runs as root inside the air-gapped root (its own network, mount and pid namespaces, chrooted):
# checks the network is cut, installs the bundle, starts the daemon as the handoff user the
# way the unit does, drives a session with the bundle's Node, stops it all, checks nothing is
# left, upgrades in place (systemd.sh then goes on under systemd). Each check prints
# "ok"/"FAIL"; the driver counts them.
. /root/lib.sh
TIMEFORMAT='%R %U %S'

# 1. No network but loopback.
assert_no_network

# 2. install.sh from the bundle, no network.
t0=$(ms)
if [ "${1:-}" = --installed ]; then ok "install.sh (already done in this root)"; : >/root/install.log
elif { time "$bundle/install.sh" >/root/install.log 2>&1; } 2>/root/install.time; then ok "install.sh"; else bad "install.sh (log below)"; sed 's/^/  | /' /root/install.log; finish; fi
t_install=$(( $(ms) - t0 ))
sed 's/^/  | /' /root/install.log
check "installed under /opt/handoff with its own Node 20" sh -c '/opt/handoff/node/bin/node --version | grep -q "^v20\."'
check "the unit runs the bundled Node" grep -q '^ExecStart=/opt/handoff/node/bin/node /opt/handoff/bin/handoff.js serve' /etc/systemd/system/handoff.service
check "handoff user exists" sh -c "id -u handoff >/dev/null"

# As the unit runs it: the handoff user, no new privileges, no capabilities at all.
as_service() {
  setpriv --reuid=handoff --regid=handoff --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all \
    env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/var/lib/handoff STATE_DIRECTORY=/var/lib/handoff "$@"
}
if as_service /usr/local/bin/handoff doctor --port 9222 --vnc-port 5901 >/root/doctor.log 2>&1; then ok "handoff doctor: all good"; else bad "handoff doctor"; fi
sed 's/^/  | /' /root/doctor.log

# 3. The daemon, then a session driven with the bundle's own Node and ws.
# Started directly (not through the function) so $! is the daemon itself: setpriv, env and the
# wrapper all exec.
setpriv --reuid=handoff --regid=handoff --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all \
  env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/var/lib/handoff STATE_DIRECTORY=/var/lib/handoff \
  /usr/local/bin/handoff serve --port 9222 --vnc-port 5901 >/root/daemon.log 2>&1 &
daemon=$!
if result=$(/opt/handoff/node/bin/node /root/drive.mjs "$t0" 2>&1); then ok "session: created, Runtime.evaluate, /health, audit, stopped"; else bad "session driver"; fi
echo "  | $result"
kill -TERM "$daemon" 2>/dev/null
for _ in $(seq 1 150); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$daemon" 2>/dev/null; then bad "daemon exits on SIGTERM"; else wait "$daemon"; ok "daemon exits on SIGTERM (status $?)"; fi
[ "$fail" = 0 ] || { echo "  daemon log:"; tail -40 /root/daemon.log | sed 's/^/  | /'; }

# 4. Nothing left: in this pid namespace only this script and its parents remain.
left=$(for p in /proc/[0-9]*; do
  pid=${p#/proc/}; [ "$pid" = $$ ] && continue
  uid=$(awk '/^Uid:/ { print $2 }' "$p/status" 2>/dev/null) || continue
  comm=$(cat "$p/comm" 2>/dev/null) || continue
  case "$comm" in bash|sh|chroot|unshare|awk|cat|tr) [ "$uid" = 0 ] && continue ;; esac
  echo "$pid:$comm:uid=$uid"
done | tr '\n' ' ')
check "no process left (found: ${left:-none})" test -z "$left"
check "no file left in /dev/shm" test -z "$(ls -A /dev/shm)"

# 5. Upgrade in place keeps the state (systemd.sh then upgrades again under systemd, and
#    uninstalls).
touch /var/lib/handoff/.airgap-marker
t_up=$(ms)
check "install.sh again (upgrade in place)" sh -c "'$bundle/install.sh' >/root/upgrade.log 2>&1"
t_upgrade=$(( $(ms) - t_up ))
check "the upgrade said so and kept the state" sh -c 'grep -q "upgraded /opt/handoff" /root/upgrade.log && test -f /var/lib/handoff/.airgap-marker && test -f /var/lib/handoff/handoff.db'

first_cdp=$(echo "$result" | sed -n 's/.*"first_cdp_answer_s":\([0-9.]*\).*/\1/p')
# CPU seconds of install.sh and its children: what the install costs whatever the load.
install_cpu=$(awk '{ printf "%.0f", $2 + $3 }' /root/install.time 2>/dev/null || echo '?')
echo "airgap: figures: install ${t_install} ms (${install_cpu} s of CPU), upgrade ${t_upgrade} ms, install.sh start to first CDP answer ${first_cdp:-?} s"
finish
