# bench/nfsroot/tree.sh, sourced by run.sh and vm.sh: the tree the servers export, built
# once with debootstrap (~40 s) and cached in $TREE ($PROVKIT_CACHE/bench/minbase-bookworm),
# with a 256 MiB file of random bytes for the read figures.
ensure_tree() {
	if [ ! -d "$TREE/usr" ]; then
		echo "# building $TREE with debootstrap --variant=minbase bookworm (once)"
		mkdir -p "$(dirname "$TREE")"
		rm -rf "$TREE.tmp"
		debootstrap --variant=minbase bookworm "$TREE.tmp" >/dev/null
		mv "$TREE.tmp" "$TREE"
	fi
	BIG=$TREE/bench-big.bin
	if [ ! -f "$BIG" ] || [ "$(stat -c %s "$BIG")" != 268435456 ]; then
		head -c 268435456 /dev/urandom >"$BIG.tmp"
		mv "$BIG.tmp" "$BIG"
	fi
}
