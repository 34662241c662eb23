#!/usr/bin/env bash
# bench/nfsroot/vm.sh: nfsroot against the stock go-nfs setup (osfs + NullAuthHandler +
# CachingHandler) and nfs-ganesha (VFS backend), serving the same debootstrap tree in the
# same run, measured with the Linux kernel's NFS client from inside a qemu guest (TCG, the
# Debian kernel, virtio-net), one fresh mount per server per round:
#
#   read      cat of a 256 MiB file to /dev/null, after drop_caches
#   walk      find /usr (GNU find, chrooted into the mount)
#   statwalk  find /usr -printf %s right after it (a stat of every entry)
#
# and, per mount, the guest's RPC counts and its wait for them (mountstats), and each
# server's CPU time over the session.
#
# The guest and the servers are set up by BenchmarkVMKernelClient
# (vm_integration_test.go); run.sh has the libnfs side and the handle figures.
# Needs root, qemu-system-x86, ipxe-qemu, busybox-static, nfs-ganesha + nfs-ganesha-vfs,
# rpcbind, debootstrap (once, ~40 s, cached in $PROVKIT_CACHE/bench/minbase-bookworm) and Go.
# Environment: ROUNDS (default 3).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
CACHE=${PROVKIT_CACHE:-$HOME/.cache/provkit}
TREE=$CACHE/bench/minbase-bookworm
HERE=$(cd "$(dirname "$0")" && pwd)
MODROOT=$(cd "$HERE/../.." && pwd)

for p in qemu-system-x86_64 ganesha.nfsd rpcbind debootstrap go unshare; do
	command -v "$p" >/dev/null || { echo "vm.sh: $p not found (see scripts/debian-packages.txt)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "vm.sh: needs root (network namespaces, qemu on a tap)" >&2; exit 1; }
. "$HERE/tree.sh"
ensure_tree

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), nfs-ganesha $(ganesha.nfsd -v 2>&1 | sed -n 's/.*Release = //p')"
echo "# command: ROUNDS=$ROUNDS go test -tags integration -run XXX -bench VMKernelClient -benchtime 1x -timeout 60m ./bench/nfsroot"
cd "$MODROOT"
ROUNDS=$ROUNDS go test -tags integration -run XXX -bench VMKernelClient -benchtime 1x -timeout 60m ./bench/nfsroot 2>&1 |
	grep -v '^\(goos\|goarch\|pkg\|cpu\|PASS\|ok \)'
