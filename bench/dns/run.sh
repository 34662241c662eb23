#!/usr/bin/env bash
# bench/dns/run.sh: queries per second of provkit's DNS server against BIND (named) and
# Unbound serving the same zone, in the same run, measured with dnsperf over loopback.
#
# The zone: NODES nodes n1..nN in cluster.test (10.97.0.0/16), an alias (CNAME) for one
# node in ten, and the PTR records of 97.10.in-addr.arpa. provkit serves it from its
# table (bench/dns/main.go serve); BIND and Unbound (auth-zone) from the zone files that
# package dns writes for makedns (main.go gen). The query file mixes 70% A of nodes, 15%
# PTR, 10% aliases (CNAME + A), 5% NXDOMAIN. Every server gets THREADS threads (provkit:
# its default of 2 x GOMAXPROCS workers on GOMAXPROCS=THREADS).
#
# Each server is measured ROUNDS times, interleaved (so that load from elsewhere hits all
# of them alike), each for PERIOD seconds with CLIENTS dnsperf clients and OUTSTANDING
# queries in flight; the best round counts (the least disturbed), the median is shown too.
#
# Usage: bench/dns/run.sh
#   NODES=10000 PERIOD=10 ROUNDS=3 CLIENTS=4 OUTSTANDING=200 THREADS=2 SERVERS="provkit bind unbound" bench/dns/run.sh
set -euo pipefail

NODES=${NODES:-10000}
PERIOD=${PERIOD:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
THREADS=${THREADS:-2}
SERVERS=${SERVERS:-"provkit bind unbound"}
QUERIES=${QUERIES:-100000}

cd "$(dirname "$0")/../.."
for p in dnsperf named unbound dig; do
	command -v "$p" >/dev/null || { echo "bench/dns: $p is missing (apt-get install dnsperf bind9 unbound dnsutils)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/provkit-dnsbench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/dnsbench" ./bench/dns
"$work/dnsbench" gen -n "$NODES" -dir "$work" -queries "$QUERIES" -bind-port 5302 -unbound-port 5303 -threads "$THREADS"

declare -A port=([provkit]=5301 [bind]=5302 [unbound]=5303)
declare -A cmd=(
	[provkit]="env GOMAXPROCS=$THREADS $work/dnsbench serve -n $NODES -addr 127.0.0.1:5301"
	[bind]="named -g -c $work/named.conf -n $THREADS"
	[unbound]="unbound -d -c $work/unbound.conf"
)
for s in $SERVERS; do
	bash -c "exec ${cmd[$s]}" >"$work/$s.log" 2>&1 &
	pids+=($!)
done
for s in $SERVERS; do
	for i in $(seq 100); do
		if [ "$(dig +short +time=1 +tries=1 -p "${port[$s]}" @127.0.0.1 n1.cluster.test 2>/dev/null)" = "10.97.0.2" ]; then break; fi
		if [ "$i" = 100 ]; then echo "bench/dns: $s does not answer; its log:" >&2; cat "$work/$s.log" >&2; exit 1; fi
		sleep 0.1
	done
	# The answers must agree: an alias, a PTR, a missing name.
	echo "$s: login1 -> $(dig +short -p "${port[$s]}" @127.0.0.1 login1.cluster.test | tr '\n' ' ')| 2.0.97.10 -> $(dig +short -p "${port[$s]}" @127.0.0.1 -x 10.97.0.2) | x1: $(dig -p "${port[$s]}" @127.0.0.1 x1.cluster.test | grep -o 'status: [A-Z]*')"
done

perf="dnsperf -s 127.0.0.1 -p PORT -d $work/queries.txt -l $PERIOD -c $CLIENTS -q $OUTSTANDING"
declare -A qps
for r in $(seq "$ROUNDS"); do
	for s in $SERVERS; do
		out=$(dnsperf -s 127.0.0.1 -p "${port[$s]}" -d "$work/queries.txt" -l "$PERIOD" -c "$CLIENTS" -q "$OUTSTANDING" 2>&1)
		q=$(awk '/Queries per second:/ {print $4}' <<<"$out")
		lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
		lat=$(awk '/Average Latency/ {print $4}' <<<"$out")
		qps[$s]="${qps[$s]:-} $q"
		printf 'round %d %-8s %10.0f q/s  lost %-8s avg latency %s s\n' "$r" "$s" "$q" "$lost" "$lat"
	done
done

echo
echo "dns: $NODES nodes, $PERIOD s x $ROUNDS rounds, $CLIENTS clients, $OUTSTANDING outstanding, $THREADS threads per server"
echo "command: $perf"
best() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -1; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(best "${qps[provkit]:-0}")
printf '%-8s %12s %12s %10s\n' server "best q/s" "median q/s" "provkit/x"
for s in $SERVERS; do
	b=$(best "${qps[$s]}")
	printf '%-8s %12.0f %12.0f %10.2f\n' "$s" "$b" "$(median "${qps[$s]}")" "$(echo "$base / $b" | bc -l)"
done
