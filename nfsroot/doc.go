// Package nfsroot is an NFSv3 server, built on github.com/willscott/go-nfs, that exports
// images to diskless nodes as their root file system:
//
//   - the image is served read-only; writes to it fail with NFS3ERR_ROFS;
//   - each node gets its own writable copy of a few paths (Export.Writable: /var, /tmp,
//     /root...), kept under Export.StateDir/<node> and seeded from the image the first time
//     the node mounts, like xCAT statelite's persistent files or Kerrighed's per-node /var;
//   - when the image holds a CDSL inventory (package cdsl), every node sees its own
//     host-dependent files in place (etc/hostname is n1's copy for n1), without bind mounts on
//     the server or the node, and never sees another node's tree;
//   - the client's address decides which node it is (Views); clients outside an export's
//     Clients prefixes, or that Views does not know, cannot mount it or use its handles;
//   - file handles are a deterministic function of the path, so they survive a server
//     restart; lookup is O(1) in a compact table (about 50 bytes per handle);
//   - a portmapper (PMAP v2 and rpcbind v3/v4) on port 111 lets stock clients mount with
//     plain options.
//
// There is no lock manager (NLM): clients mount with nolock. A Linux node boots with
//
//	root=/dev/nfs nfsroot=10.0.0.1:/images/compute,vers=3,proto=tcp,nolock ip=dhcp
//
// or mounts with mount -t nfs -o vers=3,proto=tcp,nolock 10.0.0.1:/images/compute /mnt
// (add port=2049,mountport=2049 when the portmapper is disabled).
//
// go-nfs serves WRITE, COMMIT, SYMLINK, REMOVE, RMDIR and RENAME through nfsroot's
// nfs.Handler and a billy.Filesystem over the caller's view. nfsroot answers the other
// procedures itself: go-nfs v0.0.4 serializes a connection's calls, sizes READDIRPLUS replies
// for 512 bytes per entry, drops the set-user-ID, set-group-ID and sticky bits in SETATTR and
// MKDIR, lacks exclusive CREATE, creates no devices in MKNOD and misreads LINK.
//
// Writes are acknowledged as FILE_SYNC once written to the server's page cache, without an
// fsync, as knfsd's "async" export option does: a crash of the server can lose the last
// seconds of what nodes wrote. Attributes and listings of the images (not of the nodes'
// state) are cached for Server.CacheTTL; changes to an image's CDSL inventory, and new node
// trees, are picked up within the same time, without a restart.
//
// READ keeps regular files open between calls, as nfs-ganesha does (up to
// Server.MaxOpenFiles descriptors, 1024 by default; one unused for 5 seconds is closed), and
// sends the data of large READs from the page cache to the socket with sendfile(2). Every
// READ still resolves its handle and checks that the path names the inode held open: in a
// node's writable state with a stat per READ, so writes, truncations, renames and removals,
// through NFS or on the server's disk, show at once (a removed file is NFS3ERR_STALE); in an
// image against the attribute cache, so an image file an administrator replaces under a
// running server (a new inode) is read from the old one for up to CacheTTL, while one
// rewritten in place is read as it is now. A removed file's space is freed when its
// descriptor is closed, at the latest 5 seconds after its last READ.
//
// Every access to the served trees goes through openat2(2) with RESOLVE_BENEATH,
// RESOLVE_NO_SYMLINKS and RESOLVE_NO_XDEV, so no symbolic link planted in an image or a
// node's writable area makes the server touch anything else.
//
// Usage:
//
//	s := &nfsroot.Server{
//		Exports: []nfsroot.Export{{
//			Path:     "/images/compute",
//			Root:     "/srv/images/compute/rootfs",
//			StateDir: "/srv/state/compute",
//			Writable: []string{"/var", "/tmp", "/root"},
//			Clients:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
//		}},
//		Views: nfsroot.ViewsFunc(func(ctx context.Context, ip netip.Addr) (nfsroot.View, error) {
//			node, ok := lookupNodeByIP(ctx, ip) // e.g. from the cluster tables
//			if !ok {
//				return nfsroot.View{}, nfsroot.ErrUnknownClient
//			}
//			return nfsroot.View{Node: node}, nil
//		}),
//		Logger: slog.Default(),
//	}
//	err := s.Serve(ctx) // :2049 and the portmapper on :111 until ctx is done
package nfsroot
