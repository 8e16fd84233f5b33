#!/bin/sh
# smoke: proves the VM plumbing with what fcvpn has today.
#  1. fcvpn over the simulated fabric between two network namespaces: ping both ways, iperf3 TCP
#     both ways, a 16 MiB checksummed transfer (fcvpn-testkit);
#  2. LIO: a tcm_loop target with a ramdisk backstore, its /dev/sgN (sg_inq, sg_readcap), a
#     write and read back through /dev/sdX, and the teardown: the kernel side of the TCMU work.
. /scenarios/lib.sh
NS_A=fca NS_B=fcb
ADDR_A=10.77.0.1 ADDR_B=10.77.0.2
IPERF_SECS=${IPERF_SECS:-3}

step "baseline: a veth pair between the namespaces (what TCG itself costs)"
make_netns
ip link add va netns "$NS_A" type veth peer name vb netns "$NS_B" || fail "veth pair"
ip -n "$NS_A" addr add 10.99.0.1/24 dev va
ip -n "$NS_B" addr add 10.99.0.2/24 dev vb
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up
ping_check "$NS_A" 10.99.0.2 veth
iperf_check "$NS_B" "$NS_A" 10.99.0.2 "$IPERF_SECS" veth
ip -n "$NS_A" link del va

step "fcvpn over the simulated fabric"
make_keys
fcvpn fabric --socket "$W/fabric.sock" > "$W/fabric.log" 2>&1 &
track $!
wait_for 10 "the fabric socket" test -S "$W/fabric.sock"
write_conf "$W/a.conf" fca "$W/a.key" "$PUB_B" "$ADDR_A" \
    'role = "initiator"' 'backend = "sim"' "fabric = \"$W/fabric.sock\""
write_conf "$W/b.conf" fcb "$W/b.key" "$PUB_A" "$ADDR_B" \
    'role = "target"' 'backend = "sim"' "fabric = \"$W/fabric.sock\""
t=$(uptime_s)
start_end "$NS_B" "$W/b.conf" fcb
start_end "$NS_A" "$W/a.conf" fca
wait_for 30 "carrier on fca" has_carrier fca
wait_for 30 "carrier on fcb" has_carrier fcb
result "sim_link_up_s=$(elapsed "$t")"

ping_check "$NS_A" "$ADDR_B" sim_a_to_b
ping_check "$NS_B" "$ADDR_A" sim_b_to_a
iperf_check "$NS_B" "$NS_A" "$ADDR_B" "$IPERF_SECS" sim_a_to_b
iperf_check "$NS_A" "$NS_B" "$ADDR_A" "$IPERF_SECS" sim_b_to_a
transfer "$NS_B" "$NS_A" "$ADDR_B" $((16 << 20)) sim_16MiB 300
result "sim_retransmits_a=$(json_num fca retransmitted) sim_retransmits_b=$(json_num fcb retransmitted) sim_rejected_a=$(json_num fca rejected_batches) sim_rejected_b=$(json_num fcb rejected_batches)"
stop_all
ip netns del "$NS_A"
ip netns del "$NS_B"

step "LIO: tcm_loop + ramdisk backstore"
C=/sys/kernel/config/target
RD=$C/core/rd_mcp_0/fcvpn_smoke
WWN=naa.5001405fc00000a1
TPG=$C/loopback/$WWN/tpgt_1
before=$(ls /dev/sg* 2>/dev/null | wc -l)
mkdir -p "$RD" || fail "mkdir $RD"
echo rd_pages=4096 > "$RD/control" || fail "rd_mcp control"
echo 1 > "$RD/enable" || fail "rd_mcp enable"
mkdir -p "$TPG/lun/lun_0" || fail "mkdir $TPG/lun/lun_0 (tcm_loop)"
echo naa.5001405fc00000a2 > "$TPG/nexus" || fail "tcm_loop nexus"
t=$(uptime_s)
ln -s "$RD" "$TPG/lun/lun_0/fcvpn_smoke" || fail "linking the LUN"
wait_for 20 "an sg device with vendor LIO-ORG" find_sg LIO-ORG
SG=$(find_sg LIO-ORG)
result "lio_scan_s=$(elapsed "$t") lio_sg=$SG sg_devices_before=$before"
inq=$(sg_inq "$SG" 2>&1) || fail "sg_inq $SG: $inq"
echo "$inq" | grep -E 'Vendor identification|Product identification|Peripheral device type'
echo "$inq" | grep -q 'Product identification: RAMDISK-MCP' || fail "sg_inq $SG: not the ramdisk: $inq"
cap=$(sg_readcap "$SG" 2>&1) || fail "sg_readcap $SG: $cap"
echo "$cap" | grep -q 'Device size: 16777216 bytes' || fail "sg_readcap $SG: expected 16 MiB: $cap"
# sg_raw's view of sense data (what tcmu.sh relies on): LIO rejects an unknown opcode itself.
raw lio_unknown_opcode sense "$SG" c0 00 00 00 00 00
raw lio_test_unit_ready good "$SG" 00 00 00 00 00 00
# The disk it became: write 4 MiB through /dev/sdX, read them back.
host=$(ls -d /sys/class/scsi_generic/"${SG#/dev/}"/device/block/* 2>/dev/null | head -n 1)
[ -n "$host" ] || fail "$SG has no block device (sd_mod)"
SD=/dev/$(basename "$host")
wait_for 10 "$SD" test -b "$SD"
dd if=/dev/urandom of="$W/pattern" bs=1M count=4 2>/dev/null
dd if="$W/pattern" of="$SD" bs=1M count=4 conv=fsync 2>/dev/null || fail "writing $SD"
echo 3 > /proc/sys/vm/drop_caches
dd if="$SD" of="$W/readback" bs=1M count=4 iflag=direct 2>/dev/null || fail "reading $SD"
w=$(sha256sum < "$W/pattern") r=$(sha256sum < "$W/readback")
[ "$w" = "$r" ] || fail "ramdisk readback differs from what was written ($SD)"
result "lio_ramdisk_rw=ok lio_disk=$SD"

# Teardown, the reverse of the setup; the sg device must go away.
rm "$TPG/lun/lun_0/fcvpn_smoke" || fail "unlinking the LUN"
rmdir "$TPG/lun/lun_0" || fail "rmdir lun_0"
echo NULL > "$TPG/nexus" 2>/dev/null
rmdir "$TPG" || fail "rmdir $TPG"
rmdir "$C/loopback/$WWN" || fail "rmdir the loopback WWN"
rmdir "$RD" || fail "rmdir the ramdisk backstore"
rmdir "$C/core/rd_mcp_0" 2>/dev/null
wait_for 10 "$SG to disappear" sh -c "! test -e $SG"
left=$(ls "$C/loopback" 2>/dev/null | grep '^naa\.' | tr '\n' ' ')
[ -z "$left" ] || fail "loopback WWNs left: $left"
result "lio_teardown=ok"
step "smoke done"
