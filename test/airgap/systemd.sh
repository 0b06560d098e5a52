#!/bin/bash
# Runs as root in the same air-gapped root, now booted with systemd as PID 1 (run.sh: its own
# network, pid, mount and cgroup namespaces) after inside.sh: install.sh upgrades in place and
# starts the real unit, a session runs under all its hardening, systemd itself scores the
# unit's exposure, `systemctl stop` leaves nothing, `--uninstall` removes all but the state.
. /root/lib.sh
assert_no_network
# PID 1 has just been exec'd: wait for its bus, then for the boot to finish.
for _ in $(seq 1 300); do [ -S /run/systemd/private ] && break; sleep 0.2; done
state=$(timeout 120 systemctl is-system-running --wait 2>/dev/null)
check "systemd is PID 1 and running (state: $state)" test "$state" = running
[ "$state" = running ] || systemctl --failed --no-pager | sed 's/^/  | /'

t0=$(ms)
check "install.sh under systemd (upgrade in place)" sh -c "'$bundle/install.sh' >/root/install-systemd.log 2>&1"
sed 's/^/  | /' /root/install-systemd.log
check "install.sh enabled and started handoff.service" sh -c 'systemctl is-enabled --quiet handoff && systemctl is-active --quiet handoff'
if result=$(/opt/handoff/node/bin/node /root/drive.mjs "$t0" 2>&1); then ok "session through the unit: created, Runtime.evaluate, /health, audit, stopped"; else bad "session through the unit"; fi
echo "  | $result"
main=$(systemctl show -p MainPID --value handoff)
check "the service runs as handoff with no capabilities" sh -c "grep -q '^Uid:[[:space:]]*$(id -u handoff)[[:space:]]' /proc/$main/status && grep -q '^CapEff:[[:space:]]*0*$' /proc/$main/status && grep -q '^CapBnd:[[:space:]]*0*$' /proc/$main/status"
exposure=$(systemd-analyze security handoff.service 2>/dev/null | sed -n 's/.*Overall exposure level for handoff.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security (live): exposure ${exposure:-?} <= 3.0" awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 3.0) }'
cgroup=/sys/fs/cgroup$(systemctl show -p ControlGroup --value handoff)
systemctl stop handoff
uid=$(id -u handoff)
left=$(for p in /proc/[0-9]*; do awk -v u="$uid" '/^Uid:/ && $2 == u { print FILENAME }' "$p/status" 2>/dev/null; done | tr '\n' ' ')
check "systemctl stop: inactive, no process of the service left (found: ${left:-none})" sh -c "! systemctl is-active --quiet handoff && test -z '$left' && { ! test -e '$cgroup/cgroup.procs' || test -z \"\$(cat '$cgroup/cgroup.procs')\"; }"
[ "$fail" = 0 ] || journalctl -u handoff --no-pager | tail -30 | sed 's/^/  | /'

check "install.sh --uninstall" sh -c "'$bundle/install.sh' --uninstall >/root/uninstall.log 2>&1"
sed 's/^/  | /' /root/uninstall.log
check "uninstall disabled the unit and removed /opt/handoff, the unit, the command, the user" sh -c '! systemctl is-enabled --quiet handoff 2>/dev/null && ! test -e /opt/handoff && ! test -e /etc/systemd/system/handoff.service && ! test -e /usr/local/bin/handoff && ! id -u handoff >/dev/null 2>&1'
check "uninstall kept the state and said where" sh -c 'test -f /var/lib/handoff/handoff.db && test -f /var/lib/handoff/.airgap-marker && grep -q "kept the state.*/var/lib/handoff" /root/uninstall.log'
check "the kept state is root's now (no freed uid owns it)" sh -c 'test -z "$(find /var/lib/handoff ! -user root -print -quit)"'
first_cdp=$(echo "$result" | sed -n 's/.*"first_cdp_answer_s":\([0-9.]*\).*/\1/p')
echo "airgap: figures: under systemd, install.sh (upgrade) start to first CDP answer ${first_cdp:-?} s, unit exposure ${exposure:-?}"
finish
