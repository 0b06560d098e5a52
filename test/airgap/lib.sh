# Shared by inside.sh and systemd.sh (sourced, inside the air-gapped root): the check counters
# and the proof that the namespace has no network.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
pass=0 fail=0
ok() { echo "airgap: ok   $*"; pass=$((pass + 1)); }
bad() { echo "airgap: FAIL $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() { echo "airgap-inside: $pass passed, $fail failed"; exit $(( fail > 0 )); }
ms() { date +%s%3N; }
bundle=$(ls -d /root/handoff-*-debian12-amd64)

# No network but loopback: no interface but lo, no route in any table but lo's. Refuses to go
# on otherwise: a test that passes where the network happens to be up proves nothing.
assert_no_network() {
  local ifaces
  ifaces=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | tr '\n' ' ')
  check "only the loopback interface (found: $ifaces)" test "$ifaces" = "lo "
  check "no IPv4 route" test "$(awk 'NR > 1' /proc/net/route | wc -l)" = 0
  check "no IPv6 route off lo" test "$(awk '$10 != "lo"' /proc/net/ipv6_route | wc -l)" = 0
  [ "$fail" = 0 ] || { echo "airgap: the namespace has a network; refusing to call this air-gapped"; finish; }
}
