#!/usr/bin/env bash
# bench/nfsroot/run.sh: nfsroot against the stock go-nfs setup (osfs + NullAuthHandler +
# CachingHandler) and nfs-ganesha (VFS backend), serving the same debootstrap tree in the
# same run, measured with libnfs's userspace clients from a second network namespace:
#
#   walk   nfs-ls -R over /usr (find + stat: LOOKUPs from the mount root and READDIRPLUS)
#   read   nfs-cat of a 256 MiB file, and the server process's CPU time (user + system) for it
#   handle FromHandle cost at 10k, 100k and 1M handles, and heap for 1M (Go benchmarks)
#
# vm.sh measures the same servers with the Linux kernel's client, from a qemu guest.
#
# Needs root, debootstrap (once, ~40 s, cached in $PROVKIT_CACHE/bench/minbase-bookworm),
# nfs-ganesha + nfs-ganesha-vfs, rpcbind, libnfs-utils, iproute2 and Go.
# Environment: ROUNDS (default 7), SKIP_HANDLES=1 to skip the Go benchmarks.
set -euo pipefail

ROUNDS=${ROUNDS:-7}
CACHE=${PROVKIT_CACHE:-$HOME/.cache/provkit}
TREE=$CACHE/bench/minbase-bookworm
HERE=$(cd "$(dirname "$0")" && pwd)
MODROOT=$(cd "$HERE/../.." && pwd)
NS_S=pknbs$$
NS_C=pknbc$$
SRV=10.94.200.1
GSRV=10.94.200.3
CLI=10.94.200.2

for p in ip nfs-ls nfs-cat ganesha.nfsd rpcbind debootstrap go unshare; do
	command -v "$p" >/dev/null || { echo "run.sh: $p not found (see scripts/debian-packages.txt)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (network namespaces, ports 111/2049)" >&2; exit 1; }

. "$HERE/tree.sh"
ensure_tree

WORK=$(mktemp -d /tmp/nfsroot-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$NS_S" 2>/dev/null || true
	ip netns del "$NS_C" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$MODROOT" && go build -o "$WORK/provnfs" ./bench/nfsroot/provnfs && go build -o "$WORK/stocknfs" ./bench/nfsroot/stocknfs)

ip netns add "$NS_S"
ip netns add "$NS_C"
ip -n "$NS_S" link set lo up
ip -n "$NS_C" link set lo up
ip link add pknb$$a type veth peer name pknb$$b
ip link set pknb$$a netns "$NS_S"
ip link set pknb$$b netns "$NS_C"
ip -n "$NS_S" addr add $SRV/24 dev pknb$$a
ip -n "$NS_S" addr add $GSRV/24 dev pknb$$a
ip -n "$NS_C" addr add $CLI/24 dev pknb$$b
ip -n "$NS_S" link set pknb$$a up
ip -n "$NS_C" link set pknb$$b up

# nfsroot, configured as for a node: /var and /tmp writable, the rest read-only.
ip netns exec "$NS_S" "$WORK/provnfs" -root "$TREE" -export /images/bench -listen $SRV:2049 \
	-clients 10.94.200.0/24 -state "$WORK/state" -writable /var,/tmp 2>"$WORK/provnfs.log" &
PIDS+=($!)
declare -A PID
PID[nfsroot]=$! # ip netns exec execs the server: the same process
# Stock go-nfs ignores the mount path: one instance rooted at /usr for the walk, one at the
# tree for the read. The handle cache holds 2^20 handles (the example's 1024 would evict
# handles the client still uses).
ip netns exec "$NS_S" "$WORK/stocknfs" -root "$TREE/usr" -listen $SRV:2051 >"$WORK/stock1.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NS_S" "$WORK/stocknfs" -root "$TREE" -listen $SRV:2052 >"$WORK/stock2.log" 2>&1 &
PIDS+=($!)
PID[go-nfs]=$!
# nfs-ganesha registers with rpcbind or exits: give both a private /run.
cat >"$WORK/ganesha.conf" <<EOF
NFS_CORE_PARAM { Protocols = 3; NFS_Port = 2049; MNT_Port = 20048; Bind_addr = $GSRV;
	Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }
NFS_KRB5 { Active_krb5 = false; }
NFSV4 { Graceless = true; }
EXPORT { Export_Id = 1; Path = $TREE; Pseudo = /tree; Access_Type = RO; Squash = No_Root_Squash;
	Protocols = 3; Transports = TCP; SecType = sys; FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
EOF
cat >"$WORK/ganesha.sh" <<'EOF'
#!/bin/sh
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/rpcbind
rpcbind -f &
RP=$!
sleep 0.5
ganesha.nfsd -F -f "$1" -L "$2/ganesha.log" -p "$2/ganesha.pid" -N NIV_WARN &
GP=$!
trap 'kill $GP; wait $GP; kill $RP; wait $RP' TERM INT
wait $GP
EOF
chmod +x "$WORK/ganesha.sh"
ip netns exec "$NS_S" unshare --mount --propagation private "$WORK/ganesha.sh" "$WORK/ganesha.conf" "$WORK" >"$WORK/ganesha.out" 2>&1 &
PIDS+=($!)

Q='version=3&auto-traverse-mounts=0'
declare -A WALK READ
WALK[nfsroot]="nfs://$SRV/images/bench/usr?$Q&nfsport=2049&mountport=2049"
WALK[go-nfs]="nfs://$SRV/?$Q&nfsport=2051&mountport=2051"
WALK[ganesha]="nfs://$GSRV$TREE/usr?$Q&nfsport=2049&mountport=20048"
READ[nfsroot]="nfs://$SRV/images/bench/bench-big.bin?$Q&nfsport=2049&mountport=2049"
READ[go-nfs]="nfs://$SRV//bench-big.bin?$Q&nfsport=2052&mountport=2052"
READ[ganesha]="nfs://$GSRV$TREE/bench-big.bin?$Q&nfsport=2049&mountport=20048"
SERVERS=(nfsroot go-nfs ganesha)

c() { ip netns exec "$NS_C" "$@"; }
now() { date +%s.%N; }

# Wait for the servers, warm each one up once (nfsroot seeds the node's /var and /tmp on its
# first mount) and check they all list the same number of entries.
want=$(find "$TREE/usr" -mindepth 1 | wc -l)
for s in "${SERVERS[@]}"; do
	for i in $(seq 1 50); do
		n=$(c nfs-ls -R "${WALK[$s]}" 2>/dev/null | wc -l) && [ "$n" -gt 0 ] && break
		sleep 0.2
	done
	if [ "$n" != "$want" ]; then
		echo "run.sh: $s lists $n entries under /usr, find lists $want" >&2
		exit 1
	fi
done

PID[ganesha]=$(cat "$WORK/ganesha.pid")

# cpu PID prints the CPU time (user + system, clock ticks) the process has used so far.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }

declare -A WT RT CT
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order so that no server always runs first or last.
	for k in 0 1 2; do
		s=${SERVERS[$(((r + k) % 3))]}
		t0=$(now)
		n=$(c nfs-ls -R "${WALK[$s]}" | wc -l)
		t1=$(now)
		[ "$n" = "$want" ] || { echo "run.sh: $s walk listed $n entries" >&2; exit 1; }
		WT[$s]+="$(echo "$t1 - $t0" | bc -l) "
		c0=$(cpu "${PID[$s]}")
		t0=$(now)
		b=$(c nfs-cat "${READ[$s]}" | wc -c)
		t1=$(now)
		c1=$(cpu "${PID[$s]}")
		[ "$b" = 268435456 ] || { echo "run.sh: $s read $b bytes" >&2; exit 1; }
		RT[$s]+="$(echo "$t1 - $t0" | bc -l) "
		CT[$s]+="$(echo "($c1 - $c0) / $TICK" | bc -l) "
	done
done

echo "# nfsroot vs stock go-nfs v0.0.4 vs nfs-ganesha $(ganesha.nfsd -v 2>&1 | sed -n 's/.*Release = //p'), libnfs $(dpkg-query -W -f '${Version}' libnfs-utils) clients"
echo "# tree: debootstrap --variant=minbase bookworm, /usr = $want entries; $ROUNDS rounds, medians (min)"
echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
printf '%-9s %18s %22s %16s\n' server "walk /usr (s)" "read 256 MiB (MiB/s)" "read server CPU s"
declare -A WM RM CM
for s in "${SERVERS[@]}"; do
	WM[$s]=$(echo "${WT[$s]}" | tr ' ' '\n' | grep . | median)
	wmin=$(echo "${WT[$s]}" | tr ' ' '\n' | grep . | sort -n | head -1)
	RM[$s]=$(echo "${RT[$s]}" | tr ' ' '\n' | grep . | median)
	rmin=$(echo "${RT[$s]}" | tr ' ' '\n' | grep . | sort -n | head -1)
	CM[$s]=$(echo "${CT[$s]}" | tr ' ' '\n' | grep . | median)
	printf '%-9s %9.3f (%6.3f) %12.0f (%6.0f) %16.2f\n' "$s" "${WM[$s]}" "$wmin" "$(echo "256 / ${RM[$s]}" | bc -l)" "$(echo "256 / $rmin" | bc -l)" "${CM[$s]}"
done
printf 'walk: nfsroot is %.1fx faster than stock go-nfs (goal >= 5x) and %.2fx the speed of ganesha (goal >= 1)\n' \
	"$(echo "${WM[go-nfs]} / ${WM[nfsroot]}" | bc -l)" "$(echo "${WM[ganesha]} / ${WM[nfsroot]}" | bc -l)"
printf 'read: nfsroot is %.2fx stock go-nfs and %.2fx ganesha\n' \
	"$(echo "${RM[go-nfs]} / ${RM[nfsroot]}" | bc -l)" "$(echo "${RM[ganesha]} / ${RM[nfsroot]}" | bc -l)"
printf 'read server CPU: nfsroot uses %.2fx the CPU time of ganesha per byte read (median per 256 MiB, clock ticks of %s Hz)\n' \
	"$(echo "${CM[nfsroot]} / ${CM[ganesha]}" | bc -l)" "$TICK"
echo "# commands (client namespace): nfs-ls -R URL | wc -l; nfs-cat URL | wc -c"
for s in "${SERVERS[@]}"; do echo "#   $s walk ${WALK[$s]}"; echo "#   $s read ${READ[$s]}"; done

if [ -z "${SKIP_HANDLES:-}" ]; then
	echo
	echo "# handle lookup (FromHandle) and memory, Go benchmarks:"
	echo "#   go test ./nfsroot -run XXX -bench HandleLookup -benchtime 100000x"
	echo "#   go test ./nfsroot -run XXX -bench HandleMemory -benchtime 1x"
	echo "#   go test ./bench/nfsroot -run XXX -bench StockHandleLookup -benchtime 5x"
	echo "#   go test ./bench/nfsroot -run XXX -bench StockHandleMemory -benchtime 1x"
	cd "$MODROOT"
	go test ./nfsroot -run XXX -bench HandleLookup -benchtime 100000x 2>&1 | grep '^Benchmark'
	go test ./nfsroot -run XXX -bench HandleMemory -benchtime 1x 2>&1 | grep '^Benchmark'
	go test ./bench/nfsroot -run XXX -bench StockHandleLookup -benchtime 5x -timeout 30m 2>&1 | grep '^Benchmark'
	go test ./bench/nfsroot -run XXX -bench StockHandleMemory -benchtime 1x -timeout 30m 2>&1 | grep '^Benchmark' 
fi
