package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/image"
	"github.com/spf13/cobra"
)

// The discovery verbs of xCAT's sequential discovery (seqdiscovery.pm), with its output.

func (a *app) nodediscoverstartCmd() *cobra.Command {
	var p cluster.SeqParams
	c := &cobra.Command{
		Use:   "nodediscoverstart -n <noderange> | noderange=<noderange> [hostiprange=<range>] [groups=<groups>] [osimage=<image>]",
		Short: "Start sequential discovery: unknown nodes get the names of noderange in the order they boot",
		RunE: func(c *cobra.Command, args []string) error {
			for _, arg := range args {
				k, val, ok := strings.Cut(arg, "=")
				if !ok || val == "" {
					return usageError(c, fmt.Sprintf("The parameter %q need a value.", k))
				}
				switch k {
				case "noderange":
					p.Noderange = val
				case "hostiprange":
					p.HostIPRange = val
				case "groups":
					p.Groups = val
				case "osimage":
					p.OSImage = val
				default:
					return usageError(c, fmt.Sprintf("Invalid arguement %q.", k))
				}
			}
			s, err := a.open(c.Context())
			if err != nil {
				return err
			}
			st, err := cluster.StartSeqDiscovery(c.Context(), s, p)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			fmt.Fprintf(out, "Sequential Discovery: Started:\n")
			fmt.Fprintf(out, "    Number of free node names: %d\n", len(st.FreeNodes))
			if p.HostIPRange != "" {
				if st.FreeIPs > 0 {
					fmt.Fprintf(out, "    Number of free host ips: %d\n", st.FreeIPs)
				} else {
					fmt.Fprintf(out, "    No free host ips.\n")
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&p.Noderange, "noderange", "n", "", "the names to give, in order")
	return c
}

func (a *app) nodediscoverstopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodediscoverstop",
		Short: "Stop sequential discovery and show what it found",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := a.open(c.Context())
			if err != nil {
				return err
			}
			rows, err := cluster.StopSeqDiscovery(c.Context(), s)
			if errors.Is(err, cluster.ErrDiscoveryStopped) {
				return errors.New("Sequential Discovery is stopped.\nProfile Discovery is stopped.")
			}
			if err != nil {
				return err
			}
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			fmt.Fprintf(out, "Discovered %d nodes.\n", len(rows))
			if len(rows) > 0 {
				fmt.Fprintf(out, "    %-20s%-10s%-10s\n", "NODE", "MTM", "SERIAL")
				for _, r := range rows {
					fmt.Fprintf(out, "    %-20s%-10s%-10s\n", r["node"], r["mtm"], cut(r["serial"], 8))
				}
			}
			return nil
		},
	}
}

func (a *app) nodediscoverstatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodediscoverstatus",
		Short: "Tell whether sequential discovery runs, and with what parameters",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, v, err := a.nodes(c.Context(), "")
			if err != nil {
				return err
			}
			if p, ok := v.SeqDiscovery(); ok {
				fmt.Fprintf(a.stdout, "Sequential discovery is running.\n    The parameters used for discovery: %s\n", p)
				return nil
			}
			fmt.Fprintf(a.stdout, "Sequential Discovery is stopped.\nProfile Discovery is stopped.\n")
			return nil
		},
	}
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// discoverAttrs are the columns nodediscoverls -l shows, in xCAT's order.
var discoverAttrs = []string{"uuid", "node", "method", "discoverytime", "arch", "cpucount", "cputype", "memory", "mtm", "serial",
	"nicdriver", "nicipv4", "nichwaddr", "nicpci", "nicloc", "niconboard", "nicfirm", "switchname", "switchaddr", "switchdesc", "switchport", "otherdata"}

var discoverTypes = []string{"seq", "profile", "switch", "blade", "manual", "mac", "undef", "all"}

func validDiscoverType(t string) error {
	for _, v := range discoverTypes {
		if t == v {
			return nil
		}
	}
	return fmt.Errorf("The discovery type '%s' is not supported: want one of %s", t, strings.Join(discoverTypes, ", "))
}

func (a *app) nodediscoverlsCmd() *cobra.Command {
	var typ, uuid string
	var long bool
	c := &cobra.Command{
		Use:   "nodediscoverls [-t seq|switch|manual|mac|undef|all] [-u uuid] [-l]",
		Short: "List the discovered nodes (the discoverydata table)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			_, v, err := a.nodes(ctx, "")
			if err != nil {
				return err
			}
			_, running := v.SeqDiscovery()
			if typ != "" {
				if err := validDiscoverType(typ); err != nil {
					return err
				}
			} else if uuid == "" {
				typ = "all"
				if running {
					typ = "seq"
				}
			}
			rows, err := cluster.DiscoveryRows(ctx, a.store, typ, uuid)
			if err != nil {
				return err
			}
			writeDiscoveryRows(a.stdout, rows, long, running && typ == "seq")
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&typ, "type", "t", "", "the discovery method to list")
	f.StringVarP(&uuid, "uuid", "u", "", "list one entry")
	f.BoolVarP(&long, "long", "l", false, "every attribute")
	return c
}

func writeDiscoveryRows(w io.Writer, rows []cluster.Row, long, countLine bool) {
	out := bufio.NewWriter(w)
	defer out.Flush()
	if countLine {
		fmt.Fprintf(out, "Discovered %d node.\n", len(rows))
	}
	if len(rows) == 0 {
		return
	}
	if !long {
		fmt.Fprintf(out, "  %-40s%-20s%-15s%-10s%-13s\n", "UUID", "NODE", "METHOD", "MTM", "SERIAL")
	}
	for _, r := range rows {
		if long {
			for _, k := range discoverAttrs {
				switch {
				case k == "uuid":
					fmt.Fprintf(out, "Object uuid: %s\n", r[k])
				case r[k] != "":
					fmt.Fprintf(out, "    %s=%s\n", k, r[k])
				}
			}
			continue
		}
		node, method := r["node"], r["method"]
		if node == "" {
			node = "undef"
		}
		if method == "" {
			method = "undef"
		}
		fmt.Fprintf(out, "  %-40s%-20s%-15s%-10s%-13s\n", r["uuid"], node, method, r["mtm"], cut(r["serial"], 12))
	}
}

func (a *app) nodediscoverdefCmd() *cobra.Command {
	var uuid, node, typ string
	var remove bool
	c := &cobra.Command{
		Use:   "nodediscoverdef -u uuid -n node | -r -u uuid | -r -t seq|switch|manual|mac|undef|all",
		Short: "Bind a discovered node to a node by hand, or remove discovery entries",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			switch {
			case remove:
				if (uuid == "") == (typ == "") || node != "" {
					return usageError(c, "give -r with exactly one of -u and -t")
				}
				match := cluster.Row{"uuid": uuid}
				if typ != "" {
					if err := validDiscoverType(typ); err != nil {
						return err
					}
					match = cluster.Row{}
					switch typ {
					case "all":
					case "seq":
						match["method"] = cluster.MethodSequential
					default:
						match["method"] = typ
					}
				}
				var n int
				err := s.Update(ctx, func(tx cluster.Tx) error {
					var err error
					n, err = tx.Delete("discoverydata", match)
					return err
				})
				if err != nil {
					return err
				}
				if uuid != "" && n == 0 {
					return fmt.Errorf("Cannot find discovery entry with uuid equals [%s].", uuid)
				}
				fmt.Fprintf(a.stdout, "Removing discovery entries finished.\n")
				return nil
			case uuid != "" && node != "":
				res, err := cluster.DefineDiscovered(ctx, s, uuid, node, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Defined [%s] to node %s.\n", uuid, res.Node)
				for _, sk := range res.Skipped {
					fmt.Fprintf(a.stderr, "Warning: %s: chain step %s\n", res.Node, sk)
				}
				return nil
			}
			return usageError(c, "give -u <uuid> -n <node>, or -r")
		},
	}
	f := c.Flags()
	f.StringVarP(&uuid, "uuid", "u", "", "the discovery entry (nodediscoverls shows them)")
	f.StringVarP(&node, "node", "n", "", "the node to bind it to")
	f.StringVarP(&typ, "type", "t", "", "with -r: remove the entries of this method")
	f.BoolVarP(&remove, "remove", "r", false, "remove entries")
	return c
}

// mknbCmd builds the discovery image, xCAT's genesis: the kernel and an initramfs whose
// /init is nodeinit, which runs in discovery mode when provd boots an unknown node with
// provkit.discover=<url>.
func (a *app) mknbCmd() *cobra.Command {
	var kernelDeb, nodeinit, busybox string
	c := &cobra.Command{
		Use:   "mknb [x86_64] --kernel-deb F [--nodeinit F] [--busybox F]",
		Short: "Build the discovery kernel and initramfs (<tftpdir>/xcat/genesis.kernel.<arch>, genesis.fs.<arch>.gz)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			arch := "x86_64"
			if len(args) == 1 {
				arch = args[0]
			}
			if arch != "x86_64" {
				return fmt.Errorf("mknb: arch %q: only x86_64 is built for now", arch)
			}
			if kernelDeb == "" {
				return usageError(c, "give --kernel-deb: a Debian linux-image package (apt-get download linux-image-amd64's dependency)")
			}
			_, v, err := a.nodes(ctx, "")
			if err != nil {
				return err
			}
			init, err := nodeinitPath(nodeinit)
			if err != nil {
				return err
			}
			dir := filepath.Join(orDefault(v.Site("tftpdir"), "/tftpboot"), "xcat")
			// A shell for the chain's shell step and runimage's runme.sh: busybox, whose
			// shell runs its applets without links.
			var files map[string]string
			if busybox != "none" {
				if _, err := os.Stat(busybox); err != nil {
					return fmt.Errorf("mknb: --busybox: %w (give --busybox none for a discovery image without a shell)", err)
				}
				files = map[string]string{"bin/busybox": busybox}
			}
			bf, err := image.MakeBoot(ctx, image.BootSpec{
				Files:      files,
				Dir:        dir,
				KernelDeb:  kernelDeb,
				Init:       init,
				Modules:    append(image.VirtioNetModules(), "e1000", "e1000e", "virtio_blk", "ipmi_msghandler", "ipmi_devintf", "ipmi_si"),
				KernelName: "genesis.kernel." + arch,
				InitrdName: "genesis.fs." + arch + ".gz",
				Logger:     slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "mknb: %s and %s (kernel %s, %d modules)\n", bf.Kernel, bf.Initrd, bf.KernelVersion, len(bf.Modules))
			return nil
		},
	}
	c.Flags().StringVar(&kernelDeb, "kernel-deb", "", "the Debian linux-image .deb to take the kernel and modules from")
	c.Flags().StringVar(&nodeinit, "nodeinit", "", "the nodeinit binary (default: next to provctl)")
	c.Flags().StringVar(&busybox, "busybox", "/bin/busybox", "a static busybox for the image's shell (chain shell, runimage=); none: no shell")
	return c
}
