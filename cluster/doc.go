// Package cluster is provkit's model of a cluster: xCAT's tables (site, networks, nodelist,
// nodegroup, hosts, mac, nodetype, noderes, nodehm, ipmi, passwd, osimage, ...) described as
// data, a Store over SQL (SQLite embedded, PostgreSQL for shared or HA setups), xCAT's
// noderange syntax, object definitions as lsdef/mkdef/chdef see them (with group
// inheritance and regex-valued attributes), tabdump/tabrestore CSV, nodeset boot state and
// renderers of cluster-wide files such as /etc/hosts.
//
// cluster imports no other provkit package: the service packages (dhcp, tftp, nfsroot, bmc)
// declare the small interfaces they need, and examples/provd adapts cluster to them.
package cluster
