#!/usr/bin/env bash
# packimage benchmark: provkit's image.PackFile against its peers, on the same root
# filesystem, in the same run.
#
#   bench/image/bench.sh [RUNS]        (root; default 3 runs per tool, median reported)
#
# The root filesystem is a Debian bookworm minbase plus packages (linux-image-amd64,
# build-essential, python3, git, vim, openssh-server, ...: about 1 GB), built once with
# image.Build (debootstrap, this machine's apt mirror) into $PROVKIT_CACHE/bench.
#
# Peers:
#   find|cpio|pigz   cd ROOT && find . -xdev | cpio -o -H newc --quiet | pigz > OUT
#   warewulf         Warewulf's `wwctl image build` pipeline (internal/pkg/util
#                    BuildFsImage): cpio --create --directory ROOT --format newc
#                    --file=IMG, then pigz --keep IMG. Warewulf itself cannot be fetched
#                    here (the Go module proxy answers 403 for github.com/warewulf/warewulf
#                    and github.com is unreachable), so its two steps run as it runs them.
#   mksquashfs       for the squashfs format.
# Caches are warm (one untimed read first): the page cache is shared with other work on
# this machine and is not dropped. "wall s" is elapsed time, "CPU s" user+sys of all the
# tool's processes (the fairer figure on a shared machine); peak memory is the maximum
# RSS of the largest process (GNU time %M). Medians of RUNS runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
CACHE=${PROVKIT_CACHE:-$HOME/.cache/provkit}
ROOT=$CACHE/bench/bookworm-1g/rootimg
PKGS=linux-image-amd64,build-essential,python3,git,vim,openssh-server,rsync,iproute2,man-db,less,curl
WORK=$(mktemp -d /tmp/provkit-bench-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
BIN=$WORK/image
go build -o "$BIN" ./bench/image

if [ ! -x "$ROOT/usr/bin/python3" ]; then
  echo "building the benchmark root filesystem (once) in $ROOT ..." >&2
  "$BIN" build -dir "$ROOT" -packages "$PKGS" >&2
fi
SIZE=$(du -sb --one-file-system "$ROOT" | cut -f1)
FILES=$(find "$ROOT" -xdev | wc -l)
printf 'root filesystem: %s, %d MB, %d entries; %d CPUs; runs: %d (median)\n' \
  "$ROOT" $((SIZE / 1000000)) "$FILES" "$(nproc)" "$RUNS"
printf 'pigz %s, GNU cpio %s, mksquashfs %s\n\n' "$(pigz --version 2>&1 | cut -d' ' -f2)" \
  "$(cpio --version | head -1 | awk '{print $NF}')" "$(mksquashfs -version | head -1 | awk '{print $3}')"

# measure NAME OUTFILE CMD...: runs CMD RUNS times, records the median wall time, the
# median CPU time (user+sys of all processes: robust when the machine is shared), the
# peak RSS and the output size.
declare -A T C M S
measure() {
  local name=$1 out=$2; shift 2
  local times=() cpus=() mems=() i
  for ((i = 0; i < RUNS; i++)); do
    rm -f "$out" "$out".*
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { echo "$name failed: $*" >&2; cat "$WORK/err" >&2; exit 1; }
    read -r t u s m < <(tail -1 "$WORK/time")
    times+=("$t"); cpus+=("$(echo "$u + $s" | bc)"); mems+=("$m")
  done
  T[$name]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  C[$name]=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  M[$name]=$(printf '%s\n' "${mems[@]}" | sort -n | tail -1)
  if [ -f "$out.gz" ]; then S[$name]=$(stat -c %s "$out.gz"); else S[$name]=$(stat -c %s "$out"); fi
  rm -f "$out" "$out".*
}

warewulf() { # the two steps of Warewulf's BuildFsImage, as it runs them
  (cd "$ROOT" && find . -xdev) | cpio --quiet --create --directory "$ROOT" --format newc --file="$1"
  pigz --keep "$1"
}
findcpio() { (cd "$ROOT" && find . -xdev | cpio -o -H newc --quiet | pigz > "$1"); }
findcpiozstd() { (cd "$ROOT" && find . -xdev | cpio -o -H newc --quiet | zstd -q -T0 > "$1"); }
export -f warewulf findcpio findcpiozstd
export ROOT

O=$WORK/out
# Warm the page cache once for everyone.
"$BIN" pack -root "$ROOT" -out $O -format cpio -compression none >/dev/null; rm -f $O
measure "provkit cpio gzip"     $O "$BIN" pack -root "$ROOT" -out $O -format cpio -compression gzip
measure "provkit cpio gzip -1"  $O "$BIN" pack -root "$ROOT" -out $O -format cpio -compression gzip -level 1
measure "provkit cpio zstd"     $O "$BIN" pack -root "$ROOT" -out $O -format cpio -compression zstd
measure "provkit tar zstd"      $O "$BIN" pack -root "$ROOT" -out $O -format tar -compression zstd
measure "find|cpio|pigz"        $O bash -c 'findcpio "$1"' _ $O
measure "find|cpio|zstd -T0"    $O bash -c 'findcpiozstd "$1"' _ $O
measure "warewulf (cpio; pigz)" $O bash -c 'warewulf "$1"' _ $O
measure "provkit squashfs zstd" $O "$BIN" pack -root "$ROOT" -out $O -format squashfs -compression zstd
measure "mksquashfs zstd"       $O mksquashfs "$ROOT" $O -noappend -comp zstd -one-file-system -no-progress -quiet

ref=${T["warewulf (cpio; pigz)"]}
cref=${C["warewulf (cpio; pigz)"]}
printf '%-24s %8s %7s %8s %7s %10s %8s\n' tool "wall s" "vs ww" "CPU s" "vs ww" "output MB" "peak MB"
for n in "provkit cpio gzip" "provkit cpio gzip -1" "provkit cpio zstd" "provkit tar zstd" "find|cpio|pigz" \
  "find|cpio|zstd -T0" "warewulf (cpio; pigz)" "provkit squashfs zstd" "mksquashfs zstd"; do
  printf '%-24s %8.2f %6.2fx %8.2f %6.2fx %10.1f %8.1f\n' "$n" "${T[$n]}" "$(echo "${T[$n]} / $ref" | bc -l)" \
    "${C[$n]}" "$(echo "${C[$n]} / $cref" | bc -l)" "$(echo "${S[$n]} / 1000000" | bc -l)" "$(echo "${M[$n]} / 1024" | bc -l)"
done

# The node's side: unpacking the image into a tmpfs, as nodeinit does (here natively,
# not in a VM), against gzip -dc | cpio -idm.
SHM=$(mktemp -d /dev/shm/provkit-bench-image.XXXXXX)
trap 'rm -rf "$WORK" "$SHM"' EXIT
"$BIN" pack -root "$ROOT" -out "$WORK/img.cpio.gz" -compression gzip >/dev/null
"$BIN" pack -root "$ROOT" -out "$WORK/img.cpio.zst" -compression zstd >/dev/null
unpackcpio() { mkdir -p "$2" && gzip -dc < "$1" | (cd "$2" && cpio -idm --quiet); }
export -f unpackcpio
declare -A UT UC
umeasure() {
  local name=$1; shift
  rm -rf "$SHM/u"
  /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" >/dev/null 2>&1
  read -r t u s < <(tail -1 "$WORK/time")
  UT[$name]=$t; UC[$name]=$(echo "$u + $s" | bc)
  rm -rf "$SHM/u"
}
umeasure "provkit unpack gzip" "$BIN" unpack -in "$WORK/img.cpio.gz" -dir "$SHM/u"
umeasure "provkit unpack zstd" "$BIN" unpack -in "$WORK/img.cpio.zst" -dir "$SHM/u"
umeasure "gzip -dc | cpio -idm" bash -c 'unpackcpio "$1" "$2"' _ "$WORK/img.cpio.gz" "$SHM/u"
printf '\n%-24s %8s %8s   (unpack into tmpfs)\n' tool "wall s" "CPU s"
for n in "provkit unpack gzip" "provkit unpack zstd" "gzip -dc | cpio -idm"; do
  printf '%-24s %8.2f %8.2f\n' "$n" "${UT[$n]}" "${UC[$n]}"
done

cat <<EOF

commands:
  provkit:   $BIN pack -root ROOT -out OUT -format cpio|tar|squashfs -compression gzip|zstd [-level 1]
             (go run ./bench/image pack ...: image.PackFile)
  peer:      cd ROOT && find . -xdev | cpio -o -H newc --quiet | pigz > OUT   (and | zstd -q -T0)
  warewulf:  find . -xdev | cpio --quiet --create --directory ROOT --format newc --file=IMG; pigz --keep IMG
  squashfs:  mksquashfs ROOT OUT -noappend -comp zstd -one-file-system -no-progress -quiet
  unpack:    $BIN unpack -in IMG -dir /dev/shm/DIR   (image.Unpack, what nodeinit runs)
EOF
