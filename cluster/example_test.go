package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/provkit/provkit/cluster"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "provkit-example")
	defer os.RemoveAll(dir)
	s, err := cluster.Open(ctx, filepath.Join(dir, "provkit.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// nodeadd node[01-02] groups=compute,all
	v, _ := cluster.LoadView(ctx, s)
	names, _ := cluster.ExpandNoderange("node[01-02]", v, cluster.RangeOptions{Generic: true})
	groups, _ := cluster.ParseColumnAssign("groups=compute,all")
	if err := cluster.Nodeadd(ctx, s, names, []cluster.ColumnAssign{groups}); err != nil {
		fmt.Println(err)
		return
	}
	// chtab node=compute hosts.ip='|node(\d+)|10.0.0.($1+0)|' nodehm.mgt=ipmi
	key, sets, _ := cluster.ParseChtab([]string{"node=compute", `hosts.ip=|node(\d+)|10.0.0.($1+0)|`, "nodehm.mgt=ipmi"})
	if err := cluster.Chtab(ctx, s, key, sets); err != nil {
		fmt.Println(err)
		return
	}

	v, _ = cluster.LoadView(ctx, s)
	for _, name := range v.Nodes() {
		n, _ := v.Node(name)
		fmt.Println(n.Name, n.IP, n.Mgt, n.Groups)
	}
	// Output:
	// node01 10.0.0.1 ipmi [compute all]
	// node02 10.0.0.2 ipmi [compute all]
}
