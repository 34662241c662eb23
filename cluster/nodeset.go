package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Boot states nodeset knows.
var bootStates = []string{"netboot", "statelite", "install", "sysclone", "boot", "shell", "offline", "standby", "iscsiboot"}

// NodesetRequest is one nodeset call: a state (netboot, statelite, install, sysclone,
// boot, shell, offline) or an osimage name (nodeset <nr> osimage=<img>), whose provmethod
// gives the state.
type NodesetRequest struct {
	State   string
	OSImage string
}

// ParseNodeset reads nodeset's argument: a state name or osimage=<name>.
func ParseNodeset(arg string) (NodesetRequest, error) {
	if img, ok := strings.CutPrefix(arg, "osimage="); ok {
		if img == "" {
			return NodesetRequest{}, fmt.Errorf("nodeset: osimage= needs an image name")
		}
		return NodesetRequest{OSImage: img}, nil
	}
	if arg == "osimage" {
		return NodesetRequest{OSImage: "-"}, nil // the node's own provmethod
	}
	for _, s := range bootStates {
		if arg == s {
			return NodesetRequest{State: arg}, nil
		}
	}
	return NodesetRequest{}, fmt.Errorf("nodeset: unknown state %q: valid are %s and osimage=<image>", arg, strings.Join(bootStates, ", "))
}

// Nodeset records the boot state of nodes as xCAT's nodeset does: chain.currstate becomes
// "<state> <os>-<arch>-<profile>" (from the osimage when one is given or named by
// provmethod) or a bare "boot", "shell", "offline" ...; with an osimage,
// nodetype.provmethod names it. Every node is checked first (it must resolve to an IP;
// its image must exist); on any error nothing changes. It returns each node's new state.
func Nodeset(ctx context.Context, s Store, nodes []string, req NodesetRequest) (map[string]string, error) {
	out := make(map[string]string, len(nodes))
	err := s.Update(ctx, func(tx Tx) error {
		v, err := viewInTx(ctx, tx)
		if err != nil {
			return err
		}
		chain := make([]Row, 0, len(nodes))
		var provs []Row
		for _, n := range nodes {
			if !v.IsNode(n) {
				return fmt.Errorf("nodeset: node %q: %w", n, ErrNotFound)
			}
			state, img, err := v.nodesetState(n, req)
			if err != nil {
				return err
			}
			out[n] = state
			chain = append(chain, Row{"node": n, "currstate": state})
			if img != "" && req.OSImage != "" && req.OSImage != "-" {
				provs = append(provs, Row{"node": n, "provmethod": img})
			}
		}
		if err := tx.Put("chain", chain...); err != nil {
			return err
		}
		if len(provs) > 0 {
			if err := tx.Put("nodetype", provs...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// nodesetState works out one node's new currstate and the osimage it boots, if any.
func (v *View) nodesetState(n string, req NodesetRequest) (state, img string, err error) {
	switch req.State {
	case "boot", "shell", "offline", "standby", "iscsiboot":
		return req.State, "", nil
	}
	if v.NodeAttr(n, "ip") == "" {
		return "", "", fmt.Errorf("nodeset: node %s: cannot resolve its IP address (set hosts.ip)", n)
	}
	img = req.OSImage
	if img == "-" || img == "" && req.State != "" {
		if pm := v.NodeAttr(n, "provmethod"); pm != "" && !isProvMethod(pm) {
			img = pm
		} else if img == "-" {
			return "", "", fmt.Errorf("nodeset: node %s: provmethod %q names no osimage", n, pm)
		} else {
			img = ""
		}
	}
	if img != "" {
		o, err := v.Object("osimage", img, ObjectOptions{})
		if err != nil {
			return "", "", fmt.Errorf("nodeset: node %s: osimage %s: %w", n, img, err)
		}
		st := req.State
		if st == "" {
			st = o.Attrs["provmethod"]
		}
		if !isProvMethod(st) {
			return "", "", fmt.Errorf("nodeset: osimage %s: provmethod %q is not one of install, netboot, statelite, sysclone", img, st)
		}
		return fmt.Sprintf("%s %s-%s-%s", st, o.Attrs["osvers"], o.Attrs["osarch"], o.Attrs["profile"]), img, nil
	}
	os, arch, profile := v.NodeAttr(n, "os"), v.NodeAttr(n, "arch"), v.NodeAttr(n, "profile")
	if os == "" || arch == "" || profile == "" {
		return "", "", fmt.Errorf("nodeset: node %s: no osimage, and os/arch/profile (%q/%q/%q) are not all set", n, os, arch, profile)
	}
	return fmt.Sprintf("%s %s-%s-%s", req.State, os, arch, profile), "", nil
}

func isProvMethod(s string) bool {
	switch s {
	case "install", "netboot", "statelite", "sysclone":
		return true
	}
	return false
}

// SetStatus records a node's reported state (nodelist.status and statustime), as a
// node's boot reports it and nodestat shows it.
func SetStatus(ctx context.Context, s Store, node, status string, at time.Time) error {
	return s.Update(ctx, func(tx Tx) error {
		rows, err := tx.Rows("nodelist", Row{"node": node})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return fmt.Errorf("node %q: %w", node, ErrNotFound)
		}
		_, err = tx.Set("nodelist", Row{"node": node}, Row{"status": status, "statustime": at.Format("01-02-2006 15:04:05")})
		return err
	})
}
