package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/provkit/provkit/dns"
	"github.com/provkit/provkit/examples/internal/glue"
	"github.com/spf13/cobra"
)

// defaultBindDir is where makedns writes when neither --dir nor site.binddir says.
const defaultBindDir = "/var/lib/provkit/bind"

func (a *app) makednsCmd() *cobra.Command {
	var newFiles, del bool
	var dir string
	c := &cobra.Command{
		Use:   "makedns [noderange] [-n] [-d] [--dir DIR]",
		Short: "Write the cluster's BIND zone files and named.conf snippets (site.binddir)",
		Long: `makedns writes, for sites that keep BIND, one zone file per zone (the cluster's
domains and the reverse zones of the networks) and two named.conf snippets into
site.binddir (default ` + defaultBindDir + `, or --dir): named.conf.zones, to include at the
top level of named.conf, and named.conf.options (the forwarders of site.forwarders), to
include inside its options block. The records are those provd's DNS answers: the names
makehosts writes.

  makedns -n            rebuild every zone file with every node
  makedns <noderange>   add or update these nodes' records in the existing files
  makedns -d <noderange> remove these nodes' records
  makedns               add or update every node

Each rewritten zone gets a larger serial (YYYYMMDDnn). Reload BIND afterwards (rndc reload).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			if del && len(args) == 0 {
				return errors.New("makedns -d without noderange is not supported")
			}
			nr := ""
			if len(args) == 1 {
				nr = args[0]
			}
			names, v, err := a.nodes(ctx, nr)
			if err != nil {
				return err
			}
			if dir == "" {
				dir = orDefault(v.Site("binddir"), defaultBindDir)
			}
			data, err := glue.DNSFromView(v, glue.DNSOptions{Nodes: names})
			if err != nil {
				return err
			}
			for _, w := range data.Warnings {
				fmt.Fprintf(a.stderr, "Warning: %s\n", w)
			}
			tab, err := data.Table()
			if err != nil {
				return err
			}
			fwd, err := glue.Forwarders(v)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Updating DNS records in %s\n", dir)
			var canon []string
			for _, h := range data.Hosts {
				canon = append(canon, h.Name)
			}
			now := time.Now()
			var zones []string
			for _, zf := range tab.ZoneFiles() {
				zones = append(zones, zf.Zone.Name)
				path := filepath.Join(dir, dns.FileName(zf.Zone.Name))
				old, err := readZone(path, zf.Zone.Name)
				if err != nil && newFiles {
					// -n replaces the file: what it held does not matter.
					fmt.Fprintf(a.stderr, "Warning: %v: replaced\n", err)
					old = nil
				} else if err != nil {
					return err
				}
				out := zf
				if !newFiles && old != nil {
					out = *old
					out.Zone.NS = zf.Zone.NS
					// The nodes' records go; so do the pointers to their names (an old
					// address's PTR) and the aliases of them.
					remove := zf.Names()
					for _, r := range old.Records {
						if (r.Type == "PTR" || r.Type == "CNAME") && slices.Contains(canon, r.Value) {
							remove = append(remove, r.Name)
						}
					}
					add := zf.Records
					if del {
						add = nil
					}
					out.Update(remove, add)
				} else if del {
					continue // nothing to remove from
				}
				var prev uint32
				if old != nil {
					prev = old.Zone.Serial
				}
				out.Zone.Serial = dns.NextSerial(prev, now)
				var b bytes.Buffer
				if _, err := out.WriteTo(&b); err != nil {
					return err
				}
				if err := writeAtomic(path, b.Bytes()); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "  %s: %d records, serial %d\n", path, len(out.Records), out.Zone.Serial)
			}
			conf := &dns.NamedConf{Dir: dir, Zones: zones}
			for _, f := range fwd {
				conf.Forwarders = append(conf.Forwarders, f.Addr())
			}
			var zb, ob bytes.Buffer
			if err := conf.WriteZones(&zb); err != nil {
				return err
			}
			if err := conf.WriteOptions(&ob); err != nil {
				return err
			}
			if err := writeAtomic(filepath.Join(dir, "named.conf.zones"), zb.Bytes()); err != nil {
				return err
			}
			if err := writeAtomic(filepath.Join(dir, "named.conf.options"), ob.Bytes()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Completed updating DNS records.\n")
			return nil
		},
	}
	f := c.Flags()
	f.BoolVarP(&newFiles, "new", "n", false, "rebuild the zone files from scratch")
	f.BoolVarP(&del, "delete", "d", false, "remove the nodes' records")
	f.StringVar(&dir, "dir", "", "where to write (default site.binddir, else "+defaultBindDir+")")
	return c
}

// readZone reads an existing zone file; nil when there is none.
func readZone(path, zone string) (*dns.ZoneFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zf, err := dns.ParseZoneFile(f, zone, path)
	if err != nil {
		return nil, fmt.Errorf("%w (fix it, or rebuild with makedns -n)", err)
	}
	return &zf, nil
}

// writeAtomic writes a temporary file and renames it, so a crash never leaves a torn file.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".provkit.tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
