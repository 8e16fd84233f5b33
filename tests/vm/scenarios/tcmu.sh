#!/bin/sh
# tcmu: fcvpn over the real kernel SCSI path. The target end (backend "tcmu") serves a TCMU user
# backstore exported by tcm_loop in namespace fca; the initiator end (backend "sg", device auto)
# reaches it through the /dev/sgN that tcm_loop's SCSI host shows, in namespace fcb.
#   1. the LUN: sg_inq shows the fcvpn device (processor, vendor FCVPN, VPD 83h);
#   2. the link: ping both ways, iperf3 TCP both ways, a 64 MiB checksummed transfer;
#   3. a SIGKILL of the target end in the middle of a transfer and its restart: the transfer
#      completes intact, recovery time printed;
#   4. bad input on the LUN (sg_raw): unknown opcodes, WRITEs/READs with a stranger's nexus tag,
#      a wrong transfer length, a garbage batch: proper sense data (or GOOD for a garbage batch),
#      the link keeps running, `fcvpn show --json` counts them;
#   5. benchmark: `fcvpn sg-bench` (raw SG_IO, 1 MiB commands) on the same LUN with the
#      initiator end stopped, next to fcvpn's own throughput;
#   6. SIGTERM of both ends, LIO objects checked.
. /scenarios/lib.sh
NS_T=fca NS_I=fcb
ADDR_T=10.77.0.2 ADDR_I=10.77.0.1
PORT_T=naa.5001405fc0000001 PORT_I=naa.5001405fc0000002
IPERF_SECS=${IPERF_SECS:-3}
BIG=$((64 << 20))
C=/sys/kernel/config/target

NS_A=$NS_T NS_B=$NS_I
make_netns
make_keys   # a.key: the target's, b.key: the initiator's
PUB_T=$PUB_A PUB_I=$PUB_B
write_conf "$W/t.conf" fct "$W/a.key" "$PUB_I" "$ADDR_T" \
    'role = "target"' 'backend = "tcmu"' 'fabric_module = "loopback"' \
    "port = \"$PORT_T\"" "allowed_initiators = [\"$PORT_I\"]"
write_conf "$W/i.conf" fci "$W/b.key" "$PUB_T" "$ADDR_I" \
    'role = "initiator"' 'backend = "sg"' 'device = "auto"' "port = \"$PORT_I\""
TAG=$(fcvpn-testkit nexus-tag --target "$PUB_T" --initiator "$PUB_I") || fail "fcvpn-testkit nexus-tag"
TAG_BYTES=$(echo "$TAG" | sed 's/../& /g')
result "nexus_tag=$TAG"

alive() { kill -0 "$1" 2>/dev/null; }

# start_target: the tcmu end in its namespace (it mounts configfs there itself); waits for the
# sg device with vendor FCVPN and sets T_PID and SG.
start_target() {
    start_end "$NS_T" "$W/t.conf" fct
    T_PID=$LAST_PID
    t=$(uptime_s)
    while :; do
        alive "$T_PID" || fail "the target end (backend tcmu) exited before its LUN appeared: $(tail -n 20 "$W/fct.log")"
        SG=$(find_sg FCVPN) && break
        [ "$(awk -v a="$t" -v b="$(uptime_s)" 'BEGIN { print (b - a > 60) }')" = 1 ] \
            && fail "no /dev/sg* with vendor FCVPN 60 s after starting the target end"
        sleep 0.2
    done
    LUN_S=$(elapsed "$t")
}

start_initiator() {
    start_end "$NS_I" "$W/i.conf" fci
    I_PID=$LAST_PID
}

# stop PID NAME: SIGTERM and wait up to 10 s for the exit.
stop_end() {
    kill "$1" 2>/dev/null
    n=0
    while alive "$1" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    alive "$1" && fail "$2 did not exit within 10 s of SIGTERM"
    wait "$1" 2>/dev/null
}

# 1. The LUN.
step "target end (tcmu, loopback fabric)"
start_target
result "tcmu_lun_s=$LUN_S tcmu_sg=$SG"
inq=$(timeout 20 sg_inq "$SG" 2>&1) || fail "sg_inq $SG: $inq"
echo "$inq" | grep -E 'Peripheral device type|Vendor identification|Product identification|Product revision'
echo "$inq" | grep -q 'Peripheral device type: processor' || fail "sg_inq $SG: not a processor device: $inq"
echo "$inq" | grep -q 'Product identification: IP LINK' || fail "sg_inq $SG: product is not IP LINK: $inq"
vpd=$(timeout 20 sg_inq -p 0x83 "$SG" 2>&1) || fail "sg_inq -p 0x83 $SG: $vpd"
echo "$vpd" | grep -q FCVPN || fail "VPD 83h of $SG has no FCVPN T10 designator: $vpd"
echo "$vpd" | sed -n '1,12p'
[ -z "$(ls /sys/class/scsi_generic/"${SG#/dev/}"/device/block 2>/dev/null)" ] \
    || fail "$SG got a block device: no upper-level driver may bind the fcvpn LUN"

# 2. The link.
step "initiator end (sg, device auto)"
t=$(uptime_s)
start_initiator
wait_for 60 "carrier on the initiator end" has_carrier fci
wait_for 60 "carrier on the target end" has_carrier fct
result "tcmu_link_up_s=$(elapsed "$t")"
alive "$T_PID" && alive "$I_PID" || fail "an end exited after the link came up"
ping_check "$NS_I" "$ADDR_T" tcmu_i_to_t
ping_check "$NS_T" "$ADDR_I" tcmu_t_to_i
iperf_check "$NS_T" "$NS_I" "$ADDR_T" "$IPERF_SECS" tcmu_i_to_t
iperf_check "$NS_I" "$NS_T" "$ADDR_I" "$IPERF_SECS" tcmu_t_to_i
step "64 MiB checksummed transfer, initiator to target"
transfer "$NS_T" "$NS_I" "$ADDR_T" "$BIG" tcmu_64MiB 480
FCVPN_MBPS=$MBPS

# 3. SIGKILL of the target end during a transfer (target to initiator), and its restart.
step "SIGKILL of the target end mid-transfer"
kill_restart_transfer "$NS_T" "$NS_I" "$ADDR_I" "$BIG" fct
result "restart_lun_s=$LUN_S"

# 4. Bad input on the LUN while the link runs (raw: see lib.sh).
step "bad input on $SG"
dd if=/dev/urandom of="$W/junk" bs=4096 count=1 2>/dev/null
BAD=0
rej0=$(json_num fct rejected_batches)
raw unknown_opcode_6 sense "$SG" c0 00 00 00 00 00
raw unknown_opcode_16 sense "$SG" 9e 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
raw write_stranger_tag sense -s 512 -i "$W/junk" "$SG" 8a 00 de ad be ef de ad be ef 00 00 00 01 00 00
raw read_stranger_tag sense -r 512 "$SG" 88 00 de ad be ef de ad be ef 00 00 00 01 00 00
# shellcheck disable=SC2086 # TAG_BYTES is eight separate CDB bytes
raw write_wrong_length sense -s 512 -i "$W/junk" "$SG" 8a 00 $TAG_BYTES 00 00 00 02 00 00
# shellcheck disable=SC2086
raw write_fua_set sense -s 512 -i "$W/junk" "$SG" 8a 08 $TAG_BYTES 00 00 00 01 00 00
# shellcheck disable=SC2086
raw write_garbage_batch good -s 4096 -i "$W/junk" "$SG" 8a 00 $TAG_BYTES 00 00 00 08 00 00
raw test_unit_ready good "$SG" 00 00 00 00 00 00
alive "$T_PID" && alive "$I_PID" || fail "an end died on bad input: $(tail -n 20 "$W/fct.log")"
ping_check "$NS_I" "$ADDR_T" after_bad_input_i_to_t
ping_check "$NS_T" "$ADDR_I" after_bad_input_t_to_i
foreign=$(json_num fct foreign_commands)
checks=$(json_num fct check_conditions)
rej1=$(json_num fct rejected_batches)
result "target_foreign_commands=$foreign target_check_conditions=$checks target_rejected_batches=$rej1"
[ "${foreign:-0}" -ge 2 ] || fail "fcvpn show --json: foreign_commands=$foreign after 2 commands with a stranger's tag"
[ "${checks:-0}" -ge "$BAD" ] || fail "fcvpn show --json: check_conditions=$checks after $BAD CHECK CONDITIONs"
[ "${rej1:-0}" -gt "${rej0:-0}" ] || fail "fcvpn show --json: rejected_batches did not grow ($rej0 -> $rej1) after a garbage batch"

# 5. Benchmark: raw SG_IO on the same LUN with the initiator end stopped (the target end serves it).
step "benchmark: fcvpn sg-bench on $SG"
fcvpn sg-bench --help > /dev/null 2>&1 || fail "fcvpn has no sg-bench subcommand (needed for the raw SG_IO benchmark)"
stop_end "$I_PID" "the initiator end"
bench=$(timeout 60 fcvpn sg-bench --device "$SG" --size 1048576 --seconds 5 --tag "$TAG" 2>&1) \
    || fail "fcvpn sg-bench: $bench"
echo "$bench" | sed 's/^/   /'
raw_mbps=$(echo "$bench" | grep -oE 'MBps=[0-9.]+' | head -n 1 | cut -d= -f2)
[ -n "$raw_mbps" ] || raw_mbps=$(echo "$bench" | grep -oE '[0-9.]+ ?MB/s' | head -n 1 | grep -oE '[0-9.]+')
[ -n "$raw_mbps" ] || fail "fcvpn sg-bench printed no MBps=N or N MB/s figure: $bench"
ratio=$(awk -v a="$FCVPN_MBPS" -v b="$raw_mbps" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }')
result "raw_sg_MBps=$raw_mbps fcvpn_MBps=$FCVPN_MBPS ratio=$ratio"

# 6. Teardown.
step "SIGTERM of the target end"
stop_end "$T_PID" "the target end"
n=0
while [ -e "$SG" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
left=$( (ls -d "$SG" "$C"/loopback/naa.* "$C"/core/user_*/*/ 2>/dev/null) | tr '\n' ' ')
if [ -n "$left" ]; then
    echo "WARNING: LIO objects left after SIGTERM: $left"
    result "lio_leftovers=$(echo "$left" | wc -w)"
else
    result "lio_leftovers=0"
fi
stop_all
step "tcmu done"
