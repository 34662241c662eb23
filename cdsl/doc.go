// Package cdsl manages context-dependent symbolic links (CDSLs) in a root tree shared by
// many diskless nodes, with Open Sharedroot's layout and semantics:
//
//   - cluster/cdsl/<node>/ holds each node's copy of its host-dependent paths, and
//     cluster/cdsl/default/ the copy that new nodes start from (and that nodes without a
//     tree use);
//   - a host-dependent path such as etc/hostname becomes a relative symbolic link
//     (../cdsl.local/etc/hostname) through cdsl.local, on which a booted node bind-mounts
//     its own tree;
//   - below a host-dependent directory, a path can be made shared again: its copies become
//     links into cluster/shared/;
//   - the inventory (.cdsl_inventory.xml, comoonics' format) records every CDSL.
//
// Node ids are chosen by the caller (provkit maps them from the cluster tables). Every
// operation validates its input before changing anything, refuses paths with "..", paths
// in the infrastructure and node ids with '/', works only inside the root (through
// os.Root), and rolls back when it fails half way.
//
// A server that exports the root (package nfsroot) resolves CDSLs itself with Resolve; a
// node that mounts the root as is applies the bind mounts of Mounts at boot.
//
//	repo, err := cdsl.Create("/srv/images/compute", "n1", "n2")
//	if err != nil { ... }
//	defer repo.Close()
//	err = repo.MakeHostDependent("/etc/hostname")   // each node gets its own copy
//	err = repo.MakeHostDependent("/var")
//	err = repo.MakeShared("/var/lib/dpkg")          // shared again below /var
//	p, err := repo.Resolve("n1", "/etc/hostname")   // "cluster/cdsl/n1/etc/hostname"
//	plan, err := repo.Mounts("n1")                  // bind /cluster/cdsl/n1 on /cdsl.local
//	problems, err := repo.Check()
package cdsl
