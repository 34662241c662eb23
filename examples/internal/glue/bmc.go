package glue

import (
	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/cluster"
)

// BMCTargets maps nodes to their BMCs: nodehm.mgt (or power), ipmi.bmc or openbmc.bmc,
// credentials from the node (group-inherited, regex-valued) or the passwd table.
func BMCTargets(v *cluster.View, names []string) ([]bmc.Target, error) {
	out := make([]bmc.Target, 0, len(names))
	for _, name := range names {
		n, err := v.Node(name)
		if err != nil {
			return nil, err
		}
		addr := n.BMC
		if addr != "" && n.BMCPort != "" {
			addr = addr + ":" + n.BMCPort
		}
		out = append(out, bmc.Target{Node: n.Name, Mgt: n.Power, Addr: addr, User: n.BMCUser, Password: bmc.Secret(n.BMCPassword)})
	}
	return out, nil
}
