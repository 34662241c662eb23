package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// Discovery mode (provkit.discover=<url>): nodeinit boots no root. It collects the
// node's identity, posts it to provd and does what provd answers: reboot into the image
// discovery set up, start a shell, or wait and ask again. doc.go has the contract.

// Report is what nodeinit posts: the JSON of provd's glue.DiscoveryReport.
type Report struct {
	UUID      string   `json:"uuid"`
	BootMAC   string   `json:"bootmac"`
	Arch      string   `json:"arch,omitempty"`
	CPUType   string   `json:"cputype,omitempty"`
	CPUCount  int      `json:"cpucount,omitempty"`
	MemoryMiB int64    `json:"memory_mib,omitempty"`
	MTM       string   `json:"mtm,omitempty"`
	Serial    string   `json:"serial,omitempty"`
	Vendor    string   `json:"vendor,omitempty"`
	Disks     []string `json:"disks,omitempty"`
	NICs      []NIC    `json:"nics,omitempty"`
}

// NIC is one interface of a Report.
type NIC struct {
	Name   string    `json:"name"`
	MAC    string    `json:"mac"`
	Driver string    `json:"driver,omitempty"`
	IPv4   string    `json:"ipv4,omitempty"`
	LLDP   *Neighbor `json:"lldp,omitempty"`
}

// Answer is provd's answer to a report.
type Answer struct {
	Node    string `json:"node,omitempty"`
	IP      string `json:"ip,omitempty"`
	Action  string `json:"action"`
	Retry   int    `json:"retry,omitempty"`
	Message string `json:"message,omitempty"`
	// BMC is what runcmd=bmcsetup sets on the node's BMC before it acts (bmcsetup.go).
	BMC *BMCConfig `json:"bmc,omitempty"`
	// RunImages are the chain's runimage= URLs, run in order after bmcsetup
	// (runimage.go).
	RunImages []string `json:"runimages,omitempty"`
}

// lldpCollector listens for LLDP on every Ethernet interface from the moment discovery
// starts, so that the wait for the switch's frame overlaps the DHCP exchange.
type lldpCollector struct {
	mu    sync.Mutex
	found map[string]*Neighbor // by interface name
	wg    sync.WaitGroup
}

// startLLDP starts a listener per interface, each ending after wait.
func startLLDP(ctx context.Context, wait time.Duration, con *console) *lldpCollector {
	c := &lldpCollector{found: map[string]*Neighbor{}}
	links, err := listLinks() // brings the links up
	if err != nil {
		con.warn("lldp: %v", err)
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	var once sync.Once
	for _, l := range links {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			nb, err := listenLLDP(ctx, l.Index)
			if err != nil {
				con.warn("%s: %v", l.Name, err)
				return
			}
			if nb != nil {
				c.mu.Lock()
				c.found[l.Name] = nb
				c.mu.Unlock()
				con.printf("lldp: %s is on switch %q port %q", l.Name, nb.SysName, nb.PortID)
			}
		}()
	}
	go func() { c.wg.Wait(); once.Do(cancel) }()
	return c
}

// wait waits for the listeners and returns what they found.
func (c *lldpCollector) wait() map[string]*Neighbor {
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.found
}

// sysfs is where inventory reads /sys and /proc from; tests point it at a fake tree.
type sysfs struct{ root string }

func (s sysfs) read(p string) string {
	b, err := os.ReadFile(filepath.Join(s.root, p))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// inventory collects the node's identity: DMI (product_uuid, product_serial,
// product_name, sys_vendor), CPUs and memory from /proc, disks from /sys/block, and the
// interfaces with their driver, address and LLDP neighbour.
func (s sysfs) inventory(bootMAC net.HardwareAddr, nics []NIC) Report {
	r := Report{BootMAC: bootMAC.String(), NICs: nics}
	r.UUID = strings.ToLower(s.read("sys/class/dmi/id/product_uuid"))
	if r.UUID == "" || strings.Trim(r.UUID, "0-") == "" || strings.Trim(r.UUID, "f-") == "" {
		// No usable DMI UUID (qemu has none unless given -uuid): the boot MAC names the
		// node's reports, the same on every try.
		r.UUID = "mac-" + strings.ReplaceAll(bootMAC.String(), ":", "")
	}
	r.Serial = s.read("sys/class/dmi/id/product_serial")
	r.MTM = s.read("sys/class/dmi/id/product_name")
	r.Vendor = s.read("sys/class/dmi/id/sys_vendor")
	r.Arch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le"}[runtime.GOARCH]
	sc := bufio.NewScanner(strings.NewReader(s.read("proc/cpuinfo")))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch strings.TrimSpace(k) {
		case "processor":
			r.CPUCount++
		case "model name":
			if r.CPUType == "" {
				r.CPUType = strings.TrimSpace(v)
			}
		}
	}
	sc = bufio.NewScanner(strings.NewReader(s.read("proc/meminfo")))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			r.MemoryMiB = kb / 1024
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, "sys/block"))
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "sr") {
			continue
		}
		sectors, err := strconv.ParseInt(s.read("sys/block/"+n+"/size"), 10, 64)
		if err != nil || sectors == 0 {
			continue
		}
		r.Disks = append(r.Disks, fmt.Sprintf("%s:%dGB", n, (sectors*512+500_000_000)/1_000_000_000))
	}
	return r
}

// interfaces lists the Ethernet interfaces with their driver, IPv4 address and LLDP
// neighbour.
func interfaces(lldp map[string]*Neighbor) []NIC {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []NIC
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || len(a.HardwareAddr) != 6 {
			continue
		}
		n := NIC{Name: a.Name, MAC: a.HardwareAddr.String(), LLDP: lldp[a.Name]}
		if p, err := os.Readlink("/sys/class/net/" + a.Name + "/device/driver"); err == nil {
			n.Driver = filepath.Base(p)
		}
		if addrs, err := netlink.AddrList(l, netlink.FAMILY_V4); err == nil && len(addrs) > 0 {
			n.IPv4 = addrs[0].IPNet.String()
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b NIC) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// collectReport is the real machine's inventory.
func collectReport(lldp *lldpCollector, ni netInfo) Report {
	found := lldp.wait()
	mac, _ := net.ParseMAC(ni.MAC)
	return sysfs{root: "/"}.inventory(mac, interfaces(found))
}

// postReport posts rep to url and reads the answer.
func postReport(ctx context.Context, client *http.Client, url string, rep Report) (Answer, error) {
	body, err := json.Marshal(rep)
	if err != nil {
		return Answer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "provkit-nodeinit")
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return Answer{}, fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var a Answer
	if err := json.Unmarshal(b, &a); err != nil {
		return Answer{}, fmt.Errorf("answer: %w", err)
	}
	return a, nil
}

// discover runs discovery mode after the network is up: report, then act on the answer
// until it says reboot (or shell). It returns only on a failure that ends discovery.
func discover(ctx context.Context, m machine, con *console, cfg Config, rep Report) error {
	con.printf("discovery: %s (%s, %d CPUs, %d MiB, serial %q, %d interfaces): reporting to %s",
		rep.UUID, orUnknown(rep.MTM), rep.CPUCount, rep.MemoryMiB, rep.Serial, len(rep.NICs), cfg.DiscoverURL)
	client := newHTTPClient()
	bmcDone := false
	ranImages := map[string]bool{}
	for {
		ans, err := m.postReport(ctx, client, cfg.DiscoverURL.String(), rep)
		retry := time.Duration(discoverRetryDefault) * time.Second
		if err == nil && ans.BMC != nil && !bmcDone {
			bmcDone = true
			con.printf("bmcsetup: setting the BMC to %s gateway %s user %s over in-band IPMI", ans.BMC.Addr, orUnknown(ans.BMC.Gateway), ans.BMC.User)
			res := m.bmcSetup(ctx, *ans.BMC, con)
			res.UUID, res.Node = rep.UUID, ans.Node
			if res.OK {
				con.printf("bmcsetup: done on channel %d, user %d: %s", res.Channel, res.UserID, strings.Join(res.Steps, ", "))
			} else {
				con.warn("bmcsetup: failed: %s", res.Error)
			}
			if err := m.postBMCResult(ctx, client, bmcResultURL(cfg.DiscoverURL.String()), res); err != nil {
				con.warn("bmcsetup: report: %v", err)
			}
		}
		if err == nil {
			for _, u := range ans.RunImages {
				if ranImages[u] {
					continue
				}
				ranImages[u] = true
				con.printf("runimage: %s", u)
				if err := m.runImage(ctx, client, u, ans.Node, con); err != nil {
					con.warn("runimage: %v", err)
				} else {
					con.printf("runimage: %s: done", u)
				}
			}
		}
		switch {
		case err != nil:
			con.warn("discovery: %v", err)
		case ans.Action == "reboot":
			con.printf("discovery: I am %s (%s): %s; rebooting", ans.Node, ans.IP, ans.Message)
			m.reboot()
			return nil
		case ans.Action == "shell":
			con.printf("discovery: I am %s (%s): %s; starting a shell", ans.Node, ans.IP, ans.Message)
			if sh := m.findShell(); sh != "" {
				if err := m.runShell(sh); err != nil {
					con.warn("shell: %v", err)
				}
			} else {
				con.printf("no shell in the initramfs")
			}
			m.reboot()
			return nil
		default: // "wait", or anything newer than this nodeinit
			con.printf("discovery: %s", orUnknown(ans.Message))
			if ans.Retry > 0 {
				retry = time.Duration(min(ans.Retry, 300)) * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.after(retry):
		}
	}
}

const discoverRetryDefault = 10

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
