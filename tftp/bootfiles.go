package tftp

import (
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"time"

	"github.com/provkit/provkit/tftp/bootconf"
)

// Nodes finds the boot description of the node a generated config is for. provd
// implements it over the cluster store: by name, by MAC (mac table) or by IP (hosts).
type Nodes interface {
	// BootNode returns the node q names, or an error wrapping fs.ErrNotExist.
	BootNode(ctx context.Context, q bootconf.Query) (bootconf.Node, error)
}

// NodesFunc adapts a function to Nodes.
type NodesFunc func(ctx context.Context, q bootconf.Query) (bootconf.Node, error)

// BootNode calls f.
func (f NodesFunc) BootNode(ctx context.Context, q bootconf.Query) (bootconf.Node, error) {
	return f(ctx, q)
}

// BootConfigs is the Files of per-node boot configs, generated on each request from
// Nodes: pxelinux.cfg/<node|01-mac|hex-IP>, xcat/xnba/nodes/<node>[.uefi] and GRUB2's
// boot/grub2/<node> and grub.cfg-<01-mac|hex-IP> (see bootconf.ParseName). Nothing is
// written to disk, so a change of a node's state shows at its next request. Other names,
// unknown nodes and nodes without a config in the asked format are fs.ErrNotExist, so
// BootConfigs layers over the boot root with Overlay.
type BootConfigs struct {
	Nodes Nodes
}

// Open renders the config that name asks for.
func (b *BootConfigs) Open(ctx context.Context, _ netip.Addr, name string) (File, error) {
	req, ok := bootconf.ParseName(name)
	if !ok || b.Nodes == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	node, err := b.Nodes.BootNode(ctx, req.Query)
	if err != nil {
		return nil, fmt.Errorf("tftp: %s (%s): %w", name, req.Query, err)
	}
	data, err := bootconf.Render(req.Format, node)
	if err != nil {
		return nil, fmt.Errorf("tftp: %s: %w", name, err)
	}
	// A zero modification time: HTTP sends no Last-Modified, so no client caches a
	// config that nodeset may change at any moment.
	return NewFile(name, time.Time{}, data), nil
}
