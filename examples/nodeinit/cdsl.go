package main

import (
	"fmt"
	"path/filepath"

	"github.com/provkit/provkit/cdsl"
	"golang.org/x/sys/unix"
)

// bindCDSL applies the bind-mount plan of the CDSL infrastructure in the root at dir for
// node, as Open Sharedroot's initrd does before it switches to a shared root: the node's
// tree (or the default tree, for a node without one) on the cdsl.local mount point; the
// CDSL symbolic links do the rest. It is for roots that hold every node's tree as they
// are (a RAM image, or an NFS export of a plain server); provkit's NFS server resolves
// CDSLs for each client itself, so its nodes need no plan.
func bindCDSL(dir, node string, con *console) error {
	plan, err := cdslPlan(dir, node)
	if err != nil {
		return err
	}
	for _, m := range plan {
		src, dst := filepath.Join(dir, m.Source), filepath.Join(dir, m.Target)
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("cdsl: bind %s on %s: %w", m.Source, m.Target, err)
		}
		con.printf("cdsl: %s on %s", m.Source, m.Target)
	}
	return nil
}

// cdslPlan reads the root's CDSL inventory and returns node's bind mounts.
func cdslPlan(dir, node string) ([]cdsl.Mount, error) {
	repo, err := cdsl.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("provkit.cdsl=1: %w", err)
	}
	defer repo.Close()
	plan, err := repo.Mounts(node)
	if err != nil {
		return nil, fmt.Errorf("provkit.cdsl=1: %w", err)
	}
	return plan, nil
}
