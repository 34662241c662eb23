#!/usr/bin/env bash
# sysclone capture benchmark: provkit's image.Capture (provctl imgcapture) against
# rsync -aHAX over ssh and tar | ssh, full and incremental, on the same tree, same run.
#
#   bench/sysclone/run.sh [RUNS]        (root; default 3 runs of each, median reported)
#
# The golden node is this machine's OpenSSH server started on 127.0.0.1:22981 with keys
# made for the run; the tree is a copy of the Debian bookworm root that bench/image
# builds (about 1.1 GB, 25,000 entries; built once with debootstrap into $PROVKIT_CACHE).
# "Incremental" is a second capture after `sysclone mutate` (300 files rewritten, 200
# touched, 100 removed, 100 new, the largest file grown by 1 MiB) into the copy the full
# capture made.
#
# Commands, as timed:
#   provkit  sysclone capture -addr 127.0.0.1:22981 -root TREE -dir DEST ...  (image.Capture:
#            its own protocol with a static agent it copies to the node and runs over SSH)
#   rsync    rsync -aHAX --numeric-ids --delete -e "ssh -p 22981 -i KEY ..." root@127.0.0.1:TREE/ DEST/
#   rsync-gcm  the same with ssh -c aes128-gcm@openssh.com (the cipher provkit picks)
#   tar|ssh  ssh ... tar -C TREE --xattrs --acls --sparse --numeric-owner -cf - . | tar -C DEST
#            --xattrs --xattrs-include='*' --acls --numeric-owner -xpf -
#            incremental: GNU tar --listed-incremental (snapshot kept on the node), extracted
#            with --listed-incremental=/dev/null (which also applies deletions)
# Caches are warm (the tree was just copied); the page cache is not dropped.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
PORT=22981
CACHE=${PROVKIT_CACHE:-$HOME/.cache/provkit}
SRC=$CACHE/bench/bookworm-1g/rootimg
PKGS=linux-image-amd64,build-essential,python3,git,vim,openssh-server,rsync,iproute2,man-db,less,curl
WORK=$(mktemp -d /var/tmp/provkit-bench-sysclone.XXXXXX)
SSHD_PID=
cleanup() {
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/sysclone" ./bench/sysclone
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/nodeinit" ./examples/nodeinit
if [ ! -x "$SRC/usr/bin/python3" ]; then
  echo "building the benchmark root filesystem (once) in $SRC ..." >&2
  go build -o "$WORK/imagebench" ./bench/image
  "$WORK/imagebench" build -dir "$SRC" -packages "$PKGS" >&2
fi

# The golden node: sshd on loopback with a host key and a client key of this run.
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id"
cp "$WORK/id.pub" "$WORK/authorized_keys"
echo "[127.0.0.1]:$PORT $(cat "$WORK/host_key.pub")" >"$WORK/known_hosts"
cat >"$WORK/sshd_config" <<EOF
ListenAddress 127.0.0.1:$PORT
HostKey $WORK/host_key
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PasswordAuthentication no
PidFile $WORK/sshd.pid
LogLevel ERROR
EOF
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
SSHD_PID=$!
for _ in $(seq 50); do ssh-keyscan -p $PORT 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.1; done
SSH="ssh -p $PORT -i $WORK/id -o UserKnownHostsFile=$WORK/known_hosts -o BatchMode=yes"

TREE=$WORK/golden
cp -a "$SRC" "$TREE"
SIZE=$(du -sb "$TREE" | cut -f1)
ENTRIES=$(find "$TREE" | wc -l)
printf 'tree: copy of %s, %d MB, %d entries; %d CPUs; %d runs (median)\n' "$SRC" $((SIZE / 1000000)) "$ENTRIES" "$(nproc)" "$RUNS"
printf '%s; %s; %s\n\n' "$(rsync --version | head -1)" "$(ssh -V 2>&1)" "$(tar --version | head -1)"

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

# Each tool, each run: a full capture into an empty directory, then (on a fresh copy of
# the golden tree, mutated) an incremental one into the full capture's result.
declare -A FULL INCR FB IB
run_tool() {
  local tool=$1 r dest t0 t1 fulls=() incrs=()
  for ((r = 0; r < RUNS; r++)); do
    rm -rf "$TREE" "$WORK/dest" "$WORK/snar"
    cp -a "$SRC" "$TREE"
    dest=$WORK/dest; mkdir -p "$dest"
    sync
    t0=$(now); full_$tool "$dest" >"$WORK/out.full"; t1=$(now)
    fulls+=("$(echo "$t1 - $t0" | bc)")
    "$WORK/sysclone" mutate "$TREE" >/dev/null
    sync
    t0=$(now); incr_$tool "$dest" >"$WORK/out.incr"; t1=$(now)
    incrs+=("$(echo "$t1 - $t0" | bc)")
    # The result must be the tree (checked on the first run).
    # (diff cannot compare device nodes: /dev is compared as a listing.)
    if [ "$r" = 0 ] && ! { diff -r --no-dereference -x dev "$TREE" "$dest" && diff <(ls -ln "$TREE/dev") <(ls -ln "$dest/dev"); } >/dev/null 2>&1; then
      echo "$tool: the incremental result differs from the tree" >&2
      diff -r --no-dereference -x dev "$TREE" "$dest" 2>&1 | head -5 >&2 || true
    fi
  done
  FULL[$tool]=$(printf '%s\n' "${fulls[@]}" | median)
  INCR[$tool]=$(printf '%s\n' "${incrs[@]}" | median)
  FB[$tool]=$(tail -c 300 "$WORK/out.full" | tr -d '\n')
  IB[$tool]=$(tail -c 300 "$WORK/out.incr" | tr -d '\n')
}

full_provkit() { "$WORK/sysclone" capture -addr 127.0.0.1:$PORT -key "$WORK/id" -known-hosts "$WORK/known_hosts" -agent "$WORK/nodeinit" -root "$TREE" -dir "$1"; }
incr_provkit() { full_provkit "$1"; }
full_rsync() { rsync -aHAX --numeric-ids --delete --stats -e "$SSH" "root@127.0.0.1:$TREE/" "$1/" | grep -E 'Total bytes received'; }
incr_rsync() { full_rsync "$1"; }
full_rsyncgcm() { rsync -aHAX --numeric-ids --delete --stats -e "$SSH -c aes128-gcm@openssh.com" "root@127.0.0.1:$TREE/" "$1/" | grep -E 'Total bytes received'; }
incr_rsyncgcm() { full_rsyncgcm "$1"; }
full_tar() {
  $SSH root@127.0.0.1 tar -C "$TREE" --xattrs --acls --sparse --numeric-owner --listed-incremental="$WORK/snar" -cf - . |
    tar -C "$1" --xattrs --xattrs-include='*' --acls --numeric-owner --listed-incremental=/dev/null -xpf -
}
incr_tar() { full_tar "$1"; }

for tool in provkit rsync rsyncgcm tar; do run_tool $tool; done

printf '%-10s %10s %10s %10s %10s\n' tool "full s" "vs rsync" "incr s" "vs rsync"
for tool in provkit rsync rsyncgcm tar; do
  printf '%-10s %10.2f %9.2fx %10.2f %9.2fx\n' "$tool" "${FULL[$tool]}" "$(echo "${FULL[$tool]} / ${FULL[rsync]}" | bc -l)" \
    "${INCR[$tool]}" "$(echo "${INCR[$tool]} / ${INCR[rsync]}" | bc -l)"
done
echo
echo "provkit full:  ${FB[provkit]}"
echo "provkit incr:  ${IB[provkit]}"
echo "rsync full:    ${FB[rsync]}"
echo "rsync incr:    ${IB[rsync]}"
