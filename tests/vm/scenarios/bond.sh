#!/bin/sh
# bond: Linux bonding (active-backup) over fcvpn's TAP device and a veth, in each namespace:
# fcvpn in TAP mode with no address (target backend "tcmu" in fca, initiator backend "sg" in
# fcb) is the primary slave, the veth pair the backup.
#   1. both bonds run on the fcvpn TAP; ping through the bond;
#   2. a checksummed transfer through the bond; the target end is killed (SIGKILL) in the
#      middle: both bonds move to the veth (time printed), the transfer completes intact;
#   3. the target end is restarted: both bonds move back to fcvpn (time printed).
. /scenarios/lib.sh
NS_T=fca NS_I=fcb
BOND_T=10.88.0.2 BOND_I=10.88.0.1
PORT_T=naa.5001405fc0000001 PORT_I=naa.5001405fc0000002
MIIMON=100 UPDELAY=200
# See tcmu.sh: TCG is slow, so the VM probes loosely; the FC path is declared down after 2 s.
PROBES='probe_interval_ms = 250
dead_after_ms = 2000
command_timeout_ms = 3000'

NS_A=$NS_T NS_B=$NS_I
make_netns
make_keys
IFACE_LINES='mode = "tap"
mtu = 1500'
write_conf "$W/t.conf" fct "$W/a.key" "$PUB_B" - \
    'role = "target"' 'backend = "tcmu"' 'fabric_module = "loopback"' \
    "port = \"$PORT_T\"" "allowed_initiators = [\"$PORT_I\"]" "$PROBES"
write_conf "$W/i.conf" fci "$W/b.key" "$PUB_A" - \
    'role = "initiator"' 'backend = "sg"' 'device = "auto"' "$PROBES"
unset IFACE_LINES

alive() { kill -0 "$1" 2>/dev/null; }

step "fcvpn TAP ends (tcmu target, sg initiator)"
start_end "$NS_T" "$W/t.conf" fct
T_PID=$LAST_PID
wait_for 60 "the fcvpn LUN" find_sg FCVPN
start_end "$NS_I" "$W/i.conf" fci
I_PID=$LAST_PID
wait_for 60 "carrier on fci" has_carrier fci
wait_for 60 "carrier on fct" has_carrier fct

step "bonds: fcvpn TAP primary, veth backup, miimon ${MIIMON} ms"
ip link add vt netns "$NS_T" type veth peer name vi netns "$NS_I" || fail "veth pair"
# make_bond NS TAP VETH ADDR
make_bond() {
    ip -n "$1" link add bond0 type bond mode active-backup miimon "$MIIMON" updelay "$UPDELAY" \
        primary_reselect always fail_over_mac active || fail "bond0 in $1"
    for s in "$2" "$3"; do
        ip -n "$1" link set "$s" down
        ip -n "$1" link set "$s" mtu 1500 || fail "mtu of $s in $1"
        ip -n "$1" link set "$s" master bond0 || fail "enslaving $s to bond0 in $1"
    done
    ip -n "$1" link set bond0 type bond primary "$2" || fail "primary $2 in $1"
    ip -n "$1" addr add "$4/24" dev bond0
    ip -n "$1" link set bond0 up || fail "bond0 up in $1"
}
make_bond "$NS_T" fct vt "$BOND_T"
make_bond "$NS_I" fci vi "$BOND_I"
# active NS: the bond's active slave, as its sysfs tells.
active() { "$IPBIN" netns exec "$1" cat /sys/class/net/bond0/bonding/active_slave 2>/dev/null; }
# bond_state NS: the bond's slaves and their link states, on one line.
bond_state() {
    echo "[$1: $("$IPBIN" netns exec "$1" cat /proc/net/bonding/bond0 2>&1 | grep -E 'Currently Active|Slave Interface|MII Status|Link Failure' | tr '\n' ';')"
    echo " links: $("$IPBIN" -n "$1" -br link 2>&1 | tr '\n' ';')]"
}
both_on() { [ "$(active "$NS_T")" = "$1" ] && [ "$(active "$NS_I")" = "$2" ]; }
wait_for 30 "both bonds on fcvpn" both_on fct fci
ping_check "$NS_I" "$BOND_T" bond_fcvpn
FCVPN_PING=$avg
d0=$(json_num fct delivered)
ping_check "$NS_T" "$BOND_I" bond_fcvpn_back
d1=$(json_num fct delivered)
[ "${d1:-0}" -gt "${d0:-0}" ] || fail "pings through the bond did not go through fcvpn (delivered $d0 -> $d1)"

step "SIGKILL of the target end under a transfer through the bond"
start_transfer "$NS_I" "$NS_T" "$BOND_T:5304" $((32 << 20)) bond 11 300
wait_for 120 "4 MiB through the bond" past bond $((4 << 20))
t_kill=$(uptime_s)
kill -9 "$T_PID"
wait "$T_PID" 2>/dev/null
at_kill=$(progress bond)
# Which bond moved when: poll both until both are on the veth.
t_moved_t= t_moved_i=
while [ -z "$t_moved_t" ] || [ -z "$t_moved_i" ]; do
    [ -z "$t_moved_t" ] && [ "$(active "$NS_T")" = vt ] && t_moved_t=$(elapsed "$t_kill")
    [ -z "$t_moved_i" ] && [ "$(active "$NS_I")" = vi ] && t_moved_i=$(elapsed "$t_kill")
    [ "$(awk -v a="$t_kill" -v b="$(uptime_s)" 'BEGIN { print (b - a > 60) }')" = 1 ] \
        && fail "the bonds did not move to the veth within 60 s (target ns: $(active "$NS_T"), initiator ns: $(active "$NS_I"))"
    sleep 0.05
done
wait_for 60 "the transfer to move again on the veth" past bond $((at_kill + (1 << 20)))
moving=$(elapsed "$t_kill")
result "bond_switch_target_ns_s=$t_moved_t bond_switch_initiator_ns_s=$t_moved_i bond_transfer_moving_s=$moving"
finish_transfer bond "across the bond failover"
result "bond_kill_at_bytes=$at_kill"
ping_check "$NS_I" "$BOND_T" bond_veth

step "restart of the target end: back to fcvpn"
t_restart=$(uptime_s)
start_end "$NS_T" "$W/t.conf" fct
T_PID=$LAST_PID
while ! both_on fct fci; do
    [ "$(awk -v a="$t_restart" -v b="$(uptime_s)" 'BEGIN { print (b - a > 60) }')" = 1 ] \
        && fail "both bonds not back on fcvpn 60 s after the restart: $(bond_state "$NS_T") $(bond_state "$NS_I")"
    sleep 0.1
done
result "bond_failback_s=$(elapsed "$t_restart")"
d0=$(json_num fct delivered)
ping_check "$NS_I" "$BOND_T" bond_fcvpn_again
d1=$(json_num fct delivered)
[ "${d1:-0}" -gt "${d0:-0}" ] || fail "after the fail-back, pings did not go through fcvpn (delivered $d0 -> $d1)"
alive "$I_PID" || fail "the initiator end exited"
stop_all
step "bond done"
