# Helpers of the VM scenarios (busybox sh). Sourced, not run: `. /scenarios/lib.sh`.
#
# fail REASON     print it, record it for /init (FCVPN-VM-FAIL REASON), stop everything, exit 1
# result K=V...   print a FCVPN-RESULT line (collected by tests/vm/run and tests/vm.rs)
# step TEXT       print a progress line with the time since the scenario started
# wait_for SECS WHAT CMD...   run CMD until it succeeds, fail after SECS

# busybox sh runs its own applets before anything on PATH (Debian's busybox-static prefers
# applets), so iproute2's ip is called by its full path. Background commands use "$IPBIN"
# itself, not the function: then $! is the process (ip netns exec execs it), not a subshell.
IPBIN=${IPBIN:-/usr/local/bin/ip}
ip() { "$IPBIN" "$@"; }

W=/tmp/fcvpn-vm
rm -rf "$W"
mkdir -p "$W"
chmod 700 "$W"
T_START=$(cut -d' ' -f1 /proc/uptime)
PIDS=""

uptime_s() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }
step() { echo "== [$(elapsed "$T_START") s] $*"; }
result() { echo "FCVPN-RESULT $*"; }

# Logs of the processes this scenario started, printed when it fails.
dump_logs() {
    for f in "$W"/*.log "$W"/*.err; do
        [ -s "$f" ] || continue
        echo "---- $f (last 40 lines)"
        tail -n 40 "$f"
    done
}

fail() {
    reason=$(echo "$*" | tr '\n' ' ')
    echo "FCVPN-SCENARIO-FAIL $reason"
    echo "$reason" > /run/fcvpn-vm.fail
    dump_logs
    stop_all
    exit 1
}

# Remember a background process so stop_all ends it.
track() { PIDS="$PIDS $1"; }
stop_all() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    PIDS=""
}

wait_for() { # SECS WHAT CMD...
    secs=$1 what=$2
    shift 2
    t=$(uptime_s)
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(awk -v a="$t" -v b="$(uptime_s)" -v s="$secs" 'BEGIN { print (b - a > s) }')" = 1 ]; then
            fail "timed out after ${secs} s waiting for $what"
        fi
        sleep 0.1
    done
}

# Two network namespaces: $NS_A and $NS_B, with loopback up.
make_netns() {
    ip netns add "$NS_A" || fail "ip netns add $NS_A"
    ip netns add "$NS_B" || fail "ip netns add $NS_B"
    ip -n "$NS_A" link set lo up
    ip -n "$NS_B" link set lo up
}

# Keys of both ends: $W/a.key $W/b.key, public keys in PUB_A and PUB_B.
make_keys() {
    (umask 077; fcvpn genkey > "$W/a.key" && fcvpn genkey > "$W/b.key") || fail "fcvpn genkey"
    PUB_A=$(fcvpn pubkey < "$W/a.key") || fail "fcvpn pubkey"
    PUB_B=$(fcvpn pubkey < "$W/b.key") || fail "fcvpn pubkey"
}

# write_conf FILE NAME KEY PEER_PUB ADDR FC_LINES...: one end's config; [fc] gets the rest.
# ADDR "-" writes no address (a bond slave); IFACE_LINES, when set, goes into [interface].
write_conf() {
    f=$1 name=$2 key=$3 peer=$4 addr=$5
    shift 5
    {
        printf '[interface]\nname = "%s"\nprivate_key_file = "%s"\n' "$name" "$key"
        [ "$addr" = - ] || printf 'address = ["%s/24"]\n' "$addr"
        [ -z "${IFACE_LINES:-}" ] || printf '%s\n' "$IFACE_LINES"
        printf '\n[peer]\npublic_key = "%s"\n\n[fc]\n' "$peer"
        for line in "$@"; do echo "$line"; done
    } > "$f"
    fcvpn check "$f" > /dev/null 2> "$W/check.err" || fail "fcvpn check $f: $(cat "$W/check.err")"
}

# start_end NS CONF NAME: `fcvpn up CONF` in namespace NS, log in $W/NAME.log; sets LAST_PID.
start_end() {
    FCVPN_LOG=${FCVPN_LOG:-info} "$IPBIN" netns exec "$1" fcvpn up "$2" >> "$W/$3.log" 2>&1 &
    LAST_PID=$!
    track "$LAST_PID"
}

# The carrier of interface NAME as `fcvpn show --json` reports it.
has_carrier() { fcvpn show "$1" --json 2>/dev/null | grep -q '"carrier":true'; }

# json_num NAME KEY: a numeric field of `fcvpn show NAME --json` (first occurrence).
json_num() {
    fcvpn show "$1" --json 2>/dev/null | grep -o "\"$2\":[0-9.]*" | head -n 1 | cut -d: -f2
}

# ping_check NS ADDR LABEL [COUNT]: COUNT (default 5) pings, fail on any loss; prints the
# average RTT in microseconds and leaves it in $avg.
ping_check() {
    out=$("$IPBIN" netns exec "$1" ping -c "${4:-5}" -i 0.2 -W 2 "$2" 2>&1) || fail "ping $3 ($2 from $1): $out"
    echo "$out" | grep -q ' 0% packet loss' || fail "ping $3 lost packets: $out"
    # busybox: "round-trip min/avg/max = a/b/c ms"; iputils: "rtt min/avg/max/mdev = a/b/c/d ms"
    avg=$(echo "$out" | awk -F' = ' '/min\/avg\/max/ { split($2, v, "/"); printf "%.0f", v[2] * 1000 }')
    result "ping_${3}_us=$avg"
}

# iperf_check SERVER_NS CLIENT_NS ADDR SECS LABEL: TCP throughput in Mbit/s.
iperf_check() {
    "$IPBIN" netns exec "$1" iperf3 -s -1 -B "$3" -p 5201 > "$W/iperf-$5-server.log" 2>&1 &
    srv=$!
    track "$srv"
    sleep 0.5
    out=$("$IPBIN" netns exec "$2" timeout 60 iperf3 -c "$3" -p 5201 -t "$4" -f m 2>&1) \
        || { kill "$srv" 2>/dev/null; fail "iperf3 $5: $out"; }
    wait "$srv" 2>/dev/null
    mbps=$(echo "$out" | awk '/receiver/ { print $(NF-2) }' | tail -n 1)
    [ -n "$mbps" ] || fail "iperf3 $5: no receiver line in: $out"
    result "iperf_${5}_Mbps=$mbps"
}

# transfer SERVER_NS CLIENT_NS ADDR BYTES LABEL [TIMEOUT]: a checksummed TCP transfer with
# fcvpn-testkit from CLIENT_NS to ADDR in SERVER_NS; fails unless both sha256 agree. Sets MBPS.
transfer() {
    tmo=${6:-300}
    "$IPBIN" netns exec "$1" fcvpn-testkit recv --listen "$3:5301" --expect-bytes "$4" --timeout "$tmo" \
        > "$W/recv-$5.out" 2> "$W/recv-$5.err" &
    rpid=$!
    track "$rpid"
    "$IPBIN" netns exec "$2" fcvpn-testkit send --connect "$3:5301" --bytes "$4" --timeout "$tmo" \
        > "$W/send-$5.out" 2> "$W/send-$5.err" || fail "transfer $5: sender: $(cat "$W/send-$5.err")"
    wait "$rpid" || fail "transfer $5: receiver: $(cat "$W/recv-$5.err")"
    check_transfer "$5"
}

# check_transfer LABEL: compares the sender's and the receiver's sha256; sets MBPS.
check_transfer() {
    s=$(grep -o 'sha256=[0-9a-f]*' "$W/send-$1.out")
    r=$(grep -o 'sha256=[0-9a-f]*' "$W/recv-$1.out")
    [ -n "$s" ] && [ "$s" = "$r" ] || fail "transfer $1: checksums differ: sent '$s', received '$r'"
    bytes=$(grep -o 'bytes=[0-9]*' "$W/recv-$1.out" | cut -d= -f2)
    MBPS=$(grep -o 'MBps=[0-9.]*' "$W/recv-$1.out" | cut -d= -f2)
    secs=$(grep -o 'seconds=[0-9.]*' "$W/recv-$1.out" | cut -d= -f2)
    result "transfer_${1}_bytes=$bytes transfer_${1}_s=$secs transfer_${1}_MBps=$MBPS sha256_match=1"
}

# The sg device whose INQUIRY vendor is $1 (first match), or nothing (status 1).
find_sg() {
    for d in /dev/sg*; do
        [ -c "$d" ] || continue
        # bounded: a LUN whose handler is gone answers nothing until the kernel's timeout
        timeout 10 sg_inq "$d" 2>/dev/null | grep -q "Vendor identification: $1" && { echo "$d"; return 0; }
    done
    return 1
}

# raw LABEL EXPECT SG_RAW_ARGS...: one SCSI command through sg_raw (bounded by a timeout); prints
# its exit status and the status/sense lines. EXPECT "sense": CHECK CONDITION with the sense key
# ILLEGAL REQUEST (counted in BAD); "good": GOOD status.
BAD=0
raw() {
    label=$1 expect=$2
    shift 2
    out=$(timeout 30 sg_raw -v "$@" 2>&1)
    rc=$?
    sense=$(echo "$out" | grep -iE 'status|sense key|additional sense|field replaceable|info' | tr '\n' ' ' | tr -s ' ')
    echo "   $label: sg_raw exit $rc: $sense"
    case $expect in
        sense)
            [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "sg_raw $label: expected CHECK CONDITION, exit $rc: $out"
            echo "$out" | grep -qi 'Illegal Request' || fail "sg_raw $label: no ILLEGAL REQUEST sense: $out"
            BAD=$((BAD + 1)) ;;
        good)
            [ $rc -eq 0 ] || fail "sg_raw $label: expected GOOD, exit $rc: $out" ;;
        *) fail "raw $label: unknown expectation $expect" ;;
    esac
    result "sg_raw_${label}_rc=$rc"
}

# start_transfer SEND_NS RECV_NS RECV_ADDR:PORT BYTES LABEL SEED TIMEOUT: a checksummed transfer
# in the background (fcvpn-testkit) from SEND_NS to RECV_ADDR:PORT in RECV_NS; the receiver
# writes its byte count to $W/LABEL.progress (see `progress`). Sets S_PID and R_PID.
start_transfer() {
    rm -f "$W/$5.progress"
    "$IPBIN" netns exec "$2" fcvpn-testkit recv --listen "$3" --expect-bytes "$4" --timeout "$7" \
        --progress "$W/$5.progress" > "$W/recv-$5.out" 2> "$W/recv-$5.err" &
    R_PID=$!
    track "$R_PID"
    "$IPBIN" netns exec "$1" fcvpn-testkit send --connect "$3" --bytes "$4" --seed "$6" --timeout "$7" \
        > "$W/send-$5.out" 2> "$W/send-$5.err" &
    S_PID=$!
    track "$S_PID"
}
# progress LABEL: the bytes the receiver of transfer LABEL has so far; past LABEL N: at least N.
progress() { cat "$W/$1.progress" 2>/dev/null || echo 0; }
past() { [ "$(progress "$1")" -ge "$2" ]; }
# finish_transfer LABEL WHAT: waits for both sides of transfer LABEL, then `check_transfer`.
finish_transfer() {
    wait "$S_PID" || fail "transfer $2: sender: $(cat "$W/send-$1.err")"
    wait "$R_PID" || fail "transfer $2: receiver: $(cat "$W/recv-$1.err")"
    check_transfer "$1"
}

# kill_restart_transfer SEND_NS RECV_NS RECV_ADDR BYTES TARGET_IF: a checksummed transfer from
# SEND_NS to RECV_ADDR in RECV_NS; once 8 MiB have arrived, SIGKILL of the target end ($T_PID),
# a second without it, `start_target` (defined by the scenario; it sets T_PID again), and the
# transfer must complete intact. Prints how long the link and the transfer took to recover.
kill_restart_transfer() {
    start_transfer "$1" "$2" "$3:5302" "$4" kill 7 480
    wait_for 120 "8 MiB of the transfer before the kill" past kill $((8 << 20))
    t_kill=$(uptime_s)
    at_kill=$(progress kill)
    kill -9 "$T_PID"
    wait "$T_PID" 2>/dev/null
    sleep 1
    at_restart=$(progress kill)
    t_restart=$(uptime_s)
    start_target
    wait_for 120 "carrier on $5 after the restart" has_carrier "$5"
    result "restart_link_up_s=$(elapsed "$t_restart")"
    wait_for 180 "the transfer to move again after the restart" past kill $((at_restart + (1 << 20)))
    recovery=$(elapsed "$t_kill")
    finish_transfer kill "across the restart"
    result "kill_at_bytes=$at_kill kill_bytes_at_restart=$at_restart recovery_s=$recovery kill_to_done_s=$(elapsed "$t_kill")"
}

# freeze_transfer SEND_NS RECV_NS RECV_ADDR BYTES PID SECS: a checksummed transfer from SEND_NS
# to RECV_ADDR in RECV_NS; after 2 MiB have arrived, SIGSTOP to PID for SECS seconds, then
# SIGCONT. The transfer must complete intact. Prints how long after SIGCONT it moved again.
freeze_transfer() {
    start_transfer "$1" "$2" "$3:5303" "$4" freeze 9 300
    wait_for 120 "2 MiB of the transfer before the freeze" past freeze $((2 << 20))
    kill -STOP "$5"
    sleep "$6"
    at_cont=$(progress freeze)
    t_cont=$(uptime_s)
    kill -CONT "$5"
    wait_for 120 "the transfer to move again after SIGCONT" past freeze $((at_cont + (1 << 20)))
    moving=$(elapsed "$t_cont")
    finish_transfer freeze "across the freeze"
    result "freeze_s=$6 freeze_bytes_at_cont=$at_cont moving_1MiB_after_cont_s=$moving"
}
