package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
	"github.com/provkit/provkit/examples/internal/glue"
	"github.com/spf13/cobra"
)

func (a *app) makedhcpCmd() *cobra.Command {
	var (
		newConf, all, del, query bool
		iscFile, provdURL        string
	)
	c := &cobra.Command{
		Use:   "makedhcp -n | -a [-d] | noderange [-d|-q] [--isc-file /etc/dhcp/dhcpd.conf] [--provd URL]",
		Short: "Check, add, remove and query DHCP entries (provd's embedded server, or an ISC dhcpd.conf)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			v, err := a.view(ctx)
			if err != nil {
				return err
			}
			addrs := &glue.LocalAddrs{}
			nets, err := glue.DHCPNetworks(v, addrs)
			if err != nil {
				return err
			}
			port, err := glue.HTTPPort(v)
			if err != nil {
				return err
			}
			boot := &glue.Boot{Views: glue.ViewSourceFunc(func() *cluster.View { return v }), Addrs: addrs, HTTPPort: port}
			if newConf {
				if iscFile == "" {
					// The embedded server takes its networks from the tables live: -n only
					// checks that they make a valid configuration.
					for i := range nets {
						if err := nets[i].Validate(); err != nil {
							return err
						}
					}
					return nil
				}
				return writeISC(iscFile, v, nets, port, nil)
			}
			var names []string
			switch {
			case all && len(args) == 0:
				names = v.Nodes()
			case len(args) == 1:
				if names, _, err = a.nodes(ctx, args[0]); err != nil {
					return err
				}
			default:
				return usageError(c, "give a noderange, -a or -n")
			}
			res := (&glue.DHCPHosts{Boot: boot}).Reservations()
			byNode := map[string][]dhcp.Host{}
			for _, h := range res {
				byNode[h.Name] = append(byNode[h.Name], h)
			}
			if query {
				out := bufio.NewWriter(a.stdout)
				defer out.Flush()
				for _, n := range names {
					for _, h := range byNode[n] {
						fmt.Fprintf(out, "%s: ip-address = %s, hardware-address = %s\n", n, h.IP, h.MAC)
					}
				}
				return nil
			}
			// Every node must have a valid MAC and an address: a bad entry is an error
			// naming the node, and nothing is changed.
			var bad []string
			for _, n := range names {
				if err := checkDHCPNode(v, n, byNode[n]); err != nil {
					bad = append(bad, err.Error())
				}
			}
			if len(bad) > 0 && !del {
				return errors.New(strings.Join(bad, "\n"))
			}
			if iscFile != "" {
				return updateISCHosts(iscFile, v, nets, port, names, byNode, del)
			}
			if del {
				return forgetLeases(ctx, provdURL, port, names, byNode)
			}
			return nil // provd's embedded server serves these reservations from the tables
		},
	}
	f := c.Flags()
	f.BoolVarP(&newConf, "new", "n", false, "write a new configuration (ISC: subnets only)")
	f.BoolVarP(&all, "all", "a", false, "every node")
	f.BoolVarP(&del, "delete", "d", false, "remove the nodes' entries (provd: forget their leases)")
	f.BoolVarP(&query, "query", "q", false, "show the nodes' entries")
	f.StringVar(&iscFile, "isc-file", "", "manage this ISC dhcpd.conf instead of provd's embedded server")
	f.StringVar(&provdURL, "provd", "", "provd's HTTP address for -d (default http://127.0.0.1:<site.httpport>)")
	return c
}

// checkDHCPNode explains why a node cannot have a DHCP entry.
func checkDHCPNode(v *cluster.View, n string, hosts []dhcp.Host) error {
	if len(hosts) > 0 {
		return nil
	}
	mac := v.NodeAttr(n, "mac")
	switch {
	case mac == "":
		return fmt.Errorf("%s: Error: no MAC address (mac.mac) is defined", n)
	case v.NodeAttr(n, "ip") == "":
		return fmt.Errorf("%s: Error: cannot resolve its IP address (hosts.ip)", n)
	}
	return fmt.Errorf("%s: Error: MAC address %q is not valid", n, mac)
}

var iscHostMarker = regexp.MustCompile(`(?m)^#xCAT host declaration for (\S+) aka host \S+ start$`)

// updateISCHosts adds (or with del removes) the nodes' static host blocks of an ISC
// dhcpd.conf, rewriting the file from the tables with the hosts it already had.
func updateISCHosts(file string, v *cluster.View, nets []dhcp.Network, port int, names []string, byNode map[string][]dhcp.Host, del bool) error {
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	keep := map[string]bool{}
	for _, m := range iscHostMarker.FindAllSubmatch(old, -1) {
		keep[string(m[1])] = true
	}
	for _, n := range names {
		keep[n] = !del
	}
	var hosts []dhcp.ISCHost
	for _, n := range v.Nodes() {
		if !keep[n] {
			continue
		}
		for _, h := range byNode[n] {
			ih := dhcp.ISCHost{Node: n, Name: h.Hostname, MAC: h.MAC, IP: h.IP, NextServer: h.Boot.NextServer, Deny: h.Deny}
			switch v.NodeAttr(n, "netboot") {
			case "pxe":
				ih.Statements = dhcp.ISCPXEStatements()
			case "grub2", "grub2-tftp", "grub2-http":
				ih.Statements = dhcp.ISCGRUB2Statements(n)
			default:
				srv := ""
				if h.Boot.IPXE != "" {
					if u, err := url.Parse(h.Boot.IPXE); err == nil {
						srv = u.Host
					}
				}
				ih.Statements = dhcp.ISCXNBAStatements(srv, n)
			}
			hosts = append(hosts, ih)
		}
	}
	return writeISC(file, v, nets, port, hosts)
}

// writeISC renders xCAT's dhcpd.conf and replaces file with it (keeping a backup).
func writeISC(file string, v *cluster.View, nets []dhcp.Network, port int, hosts []dhcp.ISCHost) error {
	cfg := dhcp.ISCConfig{Networks: nets, Timezone: v.Site("timezone"), HTTPPort: port, Hosts: hosts}
	for _, r := range v.TableRows("networks") {
		if d := r["domain"]; d != "" && !slices.Contains(cfg.Domains, d) {
			cfg.Domains = append(cfg.Domains, d)
		}
	}
	if d := v.Site("domain"); d != "" && !slices.Contains(cfg.Domains, d) {
		cfg.Domains = append(cfg.Domains, d)
	}
	if user, pass, ok := v.Password("omapi", ""); ok {
		cfg.OMAPIKeyName, cfg.OMAPISecret = user, pass
	}
	var b bytes.Buffer
	if err := dhcp.RenderISC(&b, cfg); err != nil {
		return err
	}
	if old, err := os.ReadFile(file); err == nil {
		if err := os.WriteFile(file+".xcatbak", old, 0o644); err != nil {
			return err
		}
	}
	tmp := file + ".provkit.tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// forgetLeases asks provd to forget the nodes' leases (makedhcp -d).
func forgetLeases(ctx context.Context, base string, port int, names []string, byNode map[string][]dhcp.Host) error {
	if base == "" {
		base = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, n := range names {
		for _, h := range byNode[n] {
			req, err := http.NewRequestWithContext(ctx, http.MethodDelete, base+"/api/v1/dhcp/leases?mac="+url.QueryEscape(h.MAC.String()), nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("%s: provd at %s: %w", n, base, err)
			}
			var body struct {
				Forgotten bool `json:"forgotten"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil {
				return fmt.Errorf("%s: provd at %s answered %s", n, base, resp.Status)
			}
		}
	}
	return nil
}
