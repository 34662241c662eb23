// Package cluster is provkit's model of a cluster: xCAT's tables described as data, a Store
// over SQL, xCAT's noderange syntax, object definitions as lsdef/mkdef/chdef see them, the
// table commands admins know (chtab, tabdump, tabrestore, nodeadd, nodech, noderm), and
// renderers of cluster-wide files such as /etc/hosts.
//
// # Tables and stores
//
// Every table of xCAT's schema (the 73 of Schema.pm's %tabspec: site, networks, nodelist,
// nodegroup, hosts, mac, nodetype, noderes, nodehm, ipmi, openbmc, ppc, ppchcp, ppcdirect,
// mp, mpa, zvm, vm, hypervisor, iscsi, osimage, linuximage, winimage, nimimage, ...) carries
// xCAT's name, columns in xCAT's order (the tabdump header), keys, required columns and
// node column (switches.switch, ppchcp.hcp, mpa.mpa); see Tables. So any xCAT database
// dump restores whole with Tabrestore. Tables end in comments and disable (as in Schema.pm,
// zvm lists two columns after them and taskstate has no comments); an empty value means
// unset, and rows whose disable column is set (anything but "0" or "no") count for nothing
// when attributes resolve.
//
// Open selects the backend from its DSN: a file path is a SQLite database (embedded,
// modernc.org/sqlite, WAL, busy timeout), a postgres:// URL is PostgreSQL (pgx). One
// database/sql implementation serves both; the schema is created and migrated on open, and
// a fresh store holds xCAT's defaults (site keys, the xcatdefaults postscripts, policy).
// Update transactions are serialised across processes, so concurrent chtab/chdef never
// lose an update.
//
// # Resolution
//
// A View is a read-only snapshot that resolves attributes as xCAT does: the node's own
// value wins, else the first of its groups (in nodelist.groups order) that has one;
// site.hierarchicalattrs concatenate instead; regex-valued attributes
// (|pattern|replacement| with arithmetic, /pattern/replacement/) are evaluated for the node.
// Node gives the typed view the service packages' glue reads, by name, MAC or IP.
//
//	s, err := cluster.Open(ctx, "provkit.db")
//	...
//	err = cluster.Nodeadd(ctx, s, []string{"node01", "node02"},
//		[]cluster.ColumnAssign{{Table: "nodelist", Column: "groups", Op: "=", Value: "compute,all"}})
//	key, sets, _ := cluster.ParseChtab([]string{"node=compute", `hosts.ip=|node(\d+)|10.0.0.($1+0)|`})
//	err = cluster.Chtab(ctx, s, key, sets)
//	v, err := cluster.LoadView(ctx, s)
//	n, err := v.Node("node02") // n.IP is 10.0.0.2
//
// cluster imports no other provkit package: the service packages (dhcp, tftp, nfsroot, bmc)
// declare the small interfaces they need, and examples/provd adapts cluster to them.
package cluster
