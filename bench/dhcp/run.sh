#!/usr/bin/env bash
# bench/dhcp/run.sh: provkit's DHCP server against kea-dhcp4 (memfile) and dnsmasq, in the
# same run, driven by Kea's perfdhcp over a veth pair between two network namespaces.
#
#   server namespace pkdhcpbs: srv0 10.91.0.1/16     client namespace pkdhcpbc: cli0 10.91.0.2/16
#
# Scenarios: "reservations" (10,000 hosts, perfdhcp picks its MACs from the same list, the
# servers deny unknown clients) and "dynamic" (a pool of ~65,000 addresses, CLIENTS random
# MACs). Paths: "broadcast" (perfdhcp -l cli0: DISCOVER/REQUEST broadcast to
# 255.255.255.255) and "relayed" (perfdhcp -L 67 ... 10.91.0.1: unicast to the server).
# perfdhcp always sets giaddr to its own address, so every reply goes to 10.91.0.2:67.
# Every server persists its leases (provkit's journal, Kea's memfile CSV, dnsmasq's file).
#
# For each scenario and path the rates of RATES are offered in turn, each for PERIOD s, to
# every server (interleaved, so that load from elsewhere hits all of them alike); a server
# stops climbing once it drops more than STOP_DROPS %. The summary gives each server's
# clean rate (the highest achieved rate with drops <= CLEAN_DROPS %), its peak, and the
# ratios. LONG > 0 adds a memory run: LONG seconds at LONG_RATE on the dynamic pool,
# sampling each server's RSS every 10 s (LONG=600 is the 10-minute run).
#
# Usage (root): bench/dhcp/run.sh
#   PERIOD=10 RATES="2000 4000 8000 12000 16000" SERVERS="provkit kea dnsmasq" \
#   SCENARIOS="reservations dynamic" PATHS="broadcast relayed" LONG=600 bench/dhcp/run.sh
#   SCENARIOS= LONG=600 LONG_RATE=4000 bench/dhcp/run.sh     # the memory run only
set -euo pipefail

PERIOD=${PERIOD:-10}
RATES=${RATES:-"1000 2000 4000 6000 8000 10000 12000 14000 16000 20000 25000"}
SERVERS=${SERVERS:-"provkit kea dnsmasq"}
SCENARIOS=${SCENARIOS-"reservations dynamic"}
PATHS=${PATHS-"broadcast relayed"}
CLIENTS=${CLIENTS:-50000}
RESERVATIONS=${RESERVATIONS:-10000}
STOP_DROPS=${STOP_DROPS:-5}
CLEAN_DROPS=${CLEAN_DROPS:-0.1}
LONG=${LONG:-0}
LONG_RATE=${LONG_RATE:-6000}
LONG_SERVERS=${LONG_SERVERS:-"provkit kea"}

S=pkdhcpbs
C=pkdhcpbc
POOL="10.91.1.1-10.91.255.250"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/provkit-dhcpbench.XXXXXX)
RESULTS=$WORK/results.tsv
SERVER_PID=""

cleanup() {
	if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
	ip netns del $S 2>/dev/null || true
	ip netns del $C 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

for p in perfdhcp kea-dhcp4 dnsmasq ip go; do
	command -v $p >/dev/null || { echo "run.sh: $p not found (scripts/setup-debian.sh installs it)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }

echo "# building the provkit driver"
(cd "$ROOT" && go build -o "$WORK/dhcpbench" ./bench/dhcp)
BENCH=$WORK/dhcpbench

ip netns del $S 2>/dev/null || true
ip netns del $C 2>/dev/null || true
ip netns add $S
ip netns add $C
ip link add pkdhbv0 type veth peer name pkdhbv1
ip link set pkdhbv0 netns $S
ip link set pkdhbv1 netns $C
ip -n $S link set pkdhbv0 name srv0
ip -n $C link set pkdhbv1 name cli0
ip -n $S addr add 10.91.0.1/16 dev srv0
ip -n $C addr add 10.91.0.2/16 dev cli0
for n in $S $C; do ip -n $n link set lo up; done
ip -n $S link set srv0 up
ip -n $C link set cli0 up

"$BENCH" -gen macs -reservations "$RESERVATIONS" >"$WORK/macs"

# start_server NAME SCENARIO [extra driver args]: runs the server in $S, sets SERVER_PID.
start_server() {
	local name=$1 scen=$2 res=0 dir=$WORK/state
	shift 2
	rm -rf "$dir"; mkdir -p "$dir"
	[ "$scen" = reservations ] && res=$RESERVATIONS
	case $name in
	provkit)
		ip netns exec $S "$BENCH" -serve -iface srv0 -reservations $res -pool $POOL -leases "$dir/leases" "$@" \
			2>"$dir/log" &
		;;
	kea)
		KEA_LEASES=$dir/kea-leases.csv "$BENCH" -gen kea -iface srv0 -reservations $res -pool $POOL >"$dir/kea.json"
		KEA_LOCKFILE_DIR=$dir KEA_PIDFILE_DIR=$dir ip netns exec $S kea-dhcp4 -c "$dir/kea.json" >"$dir/log" 2>&1 &
		;;
	dnsmasq)
		DNSMASQ_LEASES=$dir/dnsmasq.leases "$BENCH" -gen dnsmasq -iface srv0 -reservations $res -pool $POOL >"$dir/dnsmasq.conf"
		ip netns exec $S dnsmasq -C "$dir/dnsmasq.conf" --pid-file="$dir/pid" >"$dir/log" 2>&1 &
		;;
	esac
	SERVER_PID=$!
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

rss_kib() { awk '/^VmRSS:/{print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }

# perf_args SCENARIO PATH: perfdhcp's client and path arguments.
perf_args() {
	local a
	if [ "$1" = reservations ]; then a="-M $WORK/macs"; else a="-R $CLIENTS"; fi
	if [ "$2" = broadcast ]; then a="$a -l cli0"; else a="$a -L 67 -l 10.91.0.2 10.91.0.1"; fi
	echo "$a"
}

# wait_ready SCENARIO PATH: the server must answer a DISCOVER.
wait_ready() {
	local i
	for i in $(seq 1 40); do
		ip netns exec $C perfdhcp -4 -r 10 -n 1 -W 500000 $(perf_args "$1" "$2") >"$WORK/state/probe" 2>&1 || true
		if awk '/^received packets:/ { if ($3 > 0) ok = 1; exit } END { exit !ok }' "$WORK/state/probe"; then return 0; fi
		kill -0 "$SERVER_PID" 2>/dev/null || { echo "server died: $(tail -5 "$WORK/state/log")" >&2; return 1; }
		sleep 0.25
	done
	echo "server not answering: $(tail -5 "$WORK/state/log") $(cat "$WORK/state/probe")" >&2
	return 1
}

# parse OUTPUT: "achieved drops%" from perfdhcp's final report. drops% = 1 - ACKs/DISCOVERs.
parse() {
	awk '
		/^Rate:/ { rate = $2 }
		/^sent packets:/ { sent[++s] = $3 }
		/^received packets:/ { recv[++r] = $3 }
		END {
			d = 100
			if (sent[1] > 0) d = 100 * (1 - recv[2] / sent[1])
			if (d < 0) d = 0
			printf "%.0f %.3f\n", rate, d
		}'
}

echo "# perfdhcp $(perfdhcp -v 2>&1 | head -1), kea-dhcp4 $(kea-dhcp4 -v 2>&1 | head -1), $(dnsmasq -v | head -1)"
echo "# $(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "server\tscenario\tpath\toffered\tachieved\tdrops%%\trss_kib\n" | tee "$RESULTS"

for scen in $SCENARIOS; do
	for path in $PATHS; do
		declare -A stopped=()
		echo "# $scen/$path: ip netns exec $C perfdhcp -4 -r RATE -p $PERIOD $(perf_args "$scen" "$path" | sed "s|$WORK|WORK|")"
		for rate in $RATES; do
			for srv in $SERVERS; do
				[ -n "${stopped[$srv]:-}" ] && continue
				start_server "$srv" "$scen"
				wait_ready "$scen" "$path"
				out=$(ip netns exec $C perfdhcp -4 -r "$rate" -p "$PERIOD" $(perf_args "$scen" "$path") 2>&1 || true)
				rss=$(rss_kib "$SERVER_PID")
				stop_server
				read -r got drops < <(echo "$out" | parse)
				printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$srv" "$scen" "$path" "$rate" "$got" "$drops" "$rss" | tee -a "$RESULTS"
				if awk -v d="$drops" -v m="$STOP_DROPS" 'BEGIN{exit !(d > m)}'; then stopped[$srv]=1; fi
			done
		done
		unset stopped
	done
done

echo
echo "# summary: clean = highest achieved rate with drops <= $CLEAN_DROPS%; peak = highest achieved rate"
awk -F'\t' -v clean="$CLEAN_DROPS" '
	NR == 1 { next }
	{
		k = $2 "/" $3; keys[k] = 1; srv[$1] = 1
		if ($6 + 0 <= clean + 0 && $5 + 0 > c[k, $1]) c[k, $1] = $5 + 0
		if ($5 + 0 > p[k, $1]) p[k, $1] = $5 + 0
	}
	END {
		for (k in keys) {
			line = sprintf("%-22s", k)
			for (s in srv) line = line sprintf("  %s clean %6d peak %6d", s, c[k, s], p[k, s])
			if (c[k, "kea"] > 0) line = line sprintf("  | provkit/kea clean %.2fx peak %.2fx", c[k, "provkit"] / c[k, "kea"], p[k, "provkit"] / p[k, "kea"])
			if (c[k, "dnsmasq"] > 0) line = line sprintf("  provkit/dnsmasq clean %.1fx", c[k, "provkit"] / c[k, "dnsmasq"])
			print line
		}
	}' "$RESULTS" | sort

if [ "$LONG" -gt 0 ]; then
	echo
	echo "# memory: $LONG s at $LONG_RATE/s, dynamic pool, broadcast; RSS (KiB) every 10 s"
	for srv in $LONG_SERVERS; do
		start_server "$srv" dynamic
		wait_ready dynamic broadcast
		ip netns exec $C perfdhcp -4 -r "$LONG_RATE" -p "$LONG" $(perf_args dynamic broadcast) >"$WORK/long.out" 2>&1 &
		PERF=$!
		samples=""
		while kill -0 $PERF 2>/dev/null; do
			samples="$samples $(rss_kib "$SERVER_PID")"
			sleep 10
		done
		wait $PERF || true
		read -r got drops < <(parse <"$WORK/long.out")
		stop_server
		echo "$srv: achieved $got/s, drops $drops%, RSS:$samples" | awk '{
			n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/ && i > 6) { v[++n] = $i }
			print $0
			if (n >= 3) printf "  %s RSS first %d KiB, at 1/3 %d, last %d, max growth after the first third %d KiB\n", $1, v[1], v[int(n/3)+1], v[n], v[n] - v[int(n/3)+1]
		}'
	done
fi
