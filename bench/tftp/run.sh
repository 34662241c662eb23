#!/usr/bin/env bash
# bench/tftp/run.sh: provkit's TFTP server and HTTP handler against tftpd-hpa, nginx and
# Go's net/http FileServer, on loopback, in the same run. Prints figures, ratios and the
# commands. Needs: tftpd-hpa, atftp, curl, nginx (scripts/debian-packages.txt).
# Usage: bench/tftp/run.sh [REPS]   (REPS: runs per single-transfer case, best kept; default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${1:-3}
W=$(mktemp -d /tmp/provkit-bench-tftp.XXXXXX)
ROOT=$W/root
mkdir -p "$ROOT" "$W/out"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

go build -o "$W/tftp-bench" ./bench/tftp
head -c 64M /dev/urandom >"$ROOT/f64"
head -c 16M /dev/urandom >"$ROOT/f16"
truncate -s 1G "$ROOT/f1g"

HPA=127.0.0.1:6969 OURS=127.0.0.1:6970 OURHTTP=127.0.0.1:8081 GOFS=127.0.0.1:8082 NGINX=127.0.0.1:8083
in.tftpd -L -s -a "$HPA" "$ROOT" & PIDS+=($!)
"$W/tftp-bench" serve -root "$ROOT" -tftp "$OURS" -http "$OURHTTP" -fileserver "$GOFS" -limit 20m & OURPID=$!; PIDS+=($OURPID)
cat >"$W/nginx.conf" <<NGX
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path $W; proxy_temp_path $W; fastcgi_temp_path $W; uwsgi_temp_path $W; scgi_temp_path $W;
  server { listen $NGINX; root $ROOT; location / { } }
}
NGX
nginx -c "$W/nginx.conf" & PIDS+=($!)
sleep 1

now() { date +%s.%N; }
# best SECONDS over REPS runs of a command
best() {
	local b=""
	for _ in $(seq "$REPS"); do
		local s e; s=$(now); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; return 1; }; e=$(now)
		b=$(awk -v b="$b" -v d="$(awk -v s="$s" -v e="$e" 'BEGIN{print e-s}')" 'BEGIN{ if (b=="" || d<b) print d; else print b }')
	done
	echo "$b"
}
mbps() { awk -v bytes="$1" -v s="$2" 'BEGIN{printf "%.1f", bytes/s/1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", b/a}'; }   # a, b seconds: speed-up of a over b
row() { printf '%-58s %8.3f s %9s MB/s\n' "$1" "$2" "$(mbps "$3" "$2")"; }
SZ64=$((64 << 20)) SZ16=$((16 << 20))

echo "== single 64 MiB transfer over TFTP (best of $REPS)"
for bs in 1468 8192; do
	h=$(best curl -s -o /dev/null --tftp-blksize $bs "tftp://$HPA/f64")
	o=$(best curl -s -o /dev/null --tftp-blksize $bs "tftp://$OURS/f64")
	row "tftpd-hpa  curl --tftp-blksize $bs" "$h" $SZ64
	row "provkit    curl --tftp-blksize $bs" "$o" $SZ64
	echo "  provkit/tftpd-hpa speed: $(ratio "$o" "$h")"
done
for bs in 1468 8192; do
	h=$(best curl -s -o /dev/null --tftp-blksize $bs "tftp://$HPA/f64")
	a=$(best atftp --option "blksize $bs" --option "windowsize 16" -g -r f64 -l /dev/null 127.0.0.1 6970)
	ah=$(best atftp --option "blksize $bs" --option "windowsize 16" -g -r f64 -l /dev/null 127.0.0.1 6969)
	g=$(best "$W/tftp-bench" get -server "$OURS" -blksize $bs -windowsize 16 f64)
	row "tftpd-hpa  curl blksize $bs (no windowsize)" "$h" $SZ64
	row "tftpd-hpa  atftp blksize $bs windowsize 16 (hpa ignores it)" "$ah" $SZ64
	row "provkit    atftp blksize $bs windowsize 16" "$a" $SZ64
	row "provkit    tftptest client blksize $bs windowsize 16" "$g" $SZ64
	echo "  windowsize 16 gain over tftpd-hpa: atftp $(ratio "$a" "$ah"), Go client $(ratio "$g" "$h") (vs curl on tftpd-hpa)"
done

# best of CREPS runs of a concurrent case (its own timer); CREPS: REPS capped at 3
CREPS=$((REPS < 3 ? REPS : 3))
echo "== 50 concurrent TFTP transfers of 16 MiB, curl --tftp-blksize 1468 (best of $CREPS)"
conc1() { # URL N
	local s e; s=$(now)
	for i in $(seq "$2"); do curl -s -o /dev/null --tftp-blksize 1468 "$1" & done
	wait_children; e=$(now); awk -v s="$s" -v e="$e" 'BEGIN{print e-s}'
}
bestof() { local b="" d; for _ in $(seq "$CREPS"); do d=$("$@"); b=$(awk -v b="$b" -v d="$d" 'BEGIN{ if (b=="" || d<b) print d; else print b }'); done; echo "$b"; }
conc() { bestof conc1 "$@"; }
wait_children() { local j; for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j" || echo "client failed" >&2;; esac; done; }
h=$(conc "tftp://$HPA/f16" 50); o=$(conc "tftp://$OURS/f16" 50)
row "tftpd-hpa  50 x 16 MiB" "$h" $((50 * SZ16))
row "provkit    50 x 16 MiB" "$o" $((50 * SZ16))
echo "  provkit/tftpd-hpa speed: $(ratio "$o" "$h")"
wconc1() { local s e; s=$(now); for i in $(seq 50); do "$W/tftp-bench" get -server "$OURS" -blksize 1468 -windowsize 16 f16 >/dev/null & done; wait_children; e=$(now); awk -v s="$s" -v e="$e" 'BEGIN{print e-s}'; }
w=$(bestof wconc1)
row "provkit    50 x 16 MiB, windowsize 16 (Go client)" "$w" $((50 * SZ16))
echo "  windowsize 16 gain over tftpd-hpa: $(ratio "$w" "$h")"

echo "== 50 concurrent HTTP downloads of 16 MiB (curl, best of $CREPS)"
hconc1() { local s e; s=$(now); for i in $(seq 50); do curl -s -o /dev/null "$1" & done; wait_children; e=$(now); awk -v s="$s" -v e="$e" 'BEGIN{print e-s}'; }
hconc() { bestof hconc1 "$@"; }
n=$(hconc "http://$NGINX/f16"); o=$(hconc "http://$OURHTTP/f16"); g=$(hconc "http://$GOFS/f16")
row "nginx      50 x 16 MiB" "$n" $((50 * SZ16))
row "provkit    50 x 16 MiB" "$o" $((50 * SZ16))
row "net/http FileServer 50 x 16 MiB" "$g" $((50 * SZ16))
echo "  provkit/nginx speed: $(ratio "$o" "$n"), provkit/FileServer: $(ratio "$o" "$g")"

echo "== memory: 50 concurrent HTTP downloads of a 1 GiB file from provkit"
peak=0
s=$(now)
for i in $(seq 50); do curl -s -o /dev/null "http://$OURHTTP/f1g" & done
while [ "$(jobs -p | wc -l)" -gt "${#PIDS[@]}" ]; do
	r=$(awk '/VmRSS/{print $2}' /proc/$OURPID/status); [ "$r" -gt "$peak" ] && peak=$r
	sleep 0.2
	[ "$(jobs -rp | wc -l)" -le "${#PIDS[@]}" ] && break
done
wait_children; e=$(now)
t=$(awk -v s="$s" -v e="$e" 'BEGIN{print e-s}')
row "provkit    50 x 1 GiB over HTTP" "$t" $((50 << 30))
echo "  provkit RSS peak sampled during it: $((peak / 1024)) MiB; VmHWM over the whole run: $(( $(awk '/VmHWM/{print $2}' /proc/$OURPID/status) / 1024 )) MiB (goal < 100 MB)"
echo
echo "commands: tftpd-hpa: in.tftpd -L -s -a $HPA ROOT; provkit: tftp-bench serve -root ROOT -tftp $OURS -http $OURHTTP -fileserver $GOFS;"
echo "          nginx 1.22 (sendfile on, 2 workers) on $NGINX; clients: curl $(curl --version | head -1 | cut -d' ' -f2), atftp 0.8.0, tftp-bench get (tftptest client)"
echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
