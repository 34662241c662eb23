// Package glue adapts the cluster store to the service packages (dhcp, tftp, bmc): it is
// the thin layer ARCHITECTURE.md puts in examples/, shared by provd and provctl so that
// both answer the same way (the DHCP reservation provd serves is the one makedhcp -q shows).
package glue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/image"
	"github.com/provkit/provkit/tftp"
	"github.com/provkit/provkit/tftp/bootconf"
)

// rootImages are the packed root images nodeinit can boot, in xCAT's order of preference.
var rootImages = []string{"rootimg.cpio.gz", "rootimg.cpio.zst", "rootimg.cpio.xz", "rootimg.tar.gz", "rootimg.tar.xz", "rootimg.sfs"}

// A ViewSource gives the current cluster view (provd reloads it when the store changes).
type ViewSource interface {
	Current() *cluster.View
}

// ViewSourceFunc adapts a function to ViewSource.
type ViewSourceFunc func() *cluster.View

// Current implements ViewSource.
func (f ViewSourceFunc) Current() *cluster.View { return f() }

// Boot adapts the cluster store to what the boot services ask: tftp.Nodes (per-node boot
// configs), the kernel command line nodeinit reads, and the server address a node uses.
type Boot struct {
	Views ViewSource
	Addrs *LocalAddrs
	// HTTPPort is the port provd's HTTP server listens on (site.httpport by default).
	HTTPPort int
	// NFSOptions are mount options added to the NFS root of statelite nodes, such as
	// "port=2049,mountport=2049" when provd serves NFS without a portmapper.
	NFSOptions string
}

var _ tftp.Nodes = (*Boot)(nil)

// BootNode implements tftp.Nodes.
func (g *Boot) BootNode(ctx context.Context, q bootconf.Query) (bootconf.Node, error) {
	v := g.Views.Current()
	var n *cluster.Node
	var err error
	switch {
	case q.Name != "":
		n, err = v.Node(q.Name)
	case q.MAC != nil:
		n, err = v.NodeByMAC(q.MAC)
	case q.IP.IsValid():
		n, err = v.NodeByIP(q.IP)
	default:
		err = cluster.ErrNotFound
	}
	if err != nil {
		return bootconf.Node{}, fmt.Errorf("boot config for %s: %w: %w", q, fs.ErrNotExist, err)
	}
	return g.Node(v, n)
}

// Node describes node n's boot as bootconf renders it.
func (g *Boot) Node(v *cluster.View, n *cluster.Node) (bootconf.Node, error) {
	srv := g.ServerFor(v, n)
	bn := bootconf.Node{
		Name:     n.Name,
		State:    n.CurrState,
		NetBoot:  n.Netboot,
		IP:       n.IP,
		Server:   srv,
		HTTPPort: g.HTTPPort,
		Debug:    v.Site("xcatdebugmode") == "1" || v.Site("xcatdebugmode") == "2",
	}
	if len(n.MACs) > 0 {
		bn.MAC = n.MACs[0].Addr
	}
	state, _, _ := strings.Cut(n.CurrState, " ")
	switch state {
	case "netboot", "statelite", "sysclone":
		k, err := g.netboot(v, n, state, srv)
		if err != nil {
			return bootconf.Node{}, err
		}
		bn.Kernel, bn.Initrd, bn.Cmdline = k.kernel, k.initrd, k.cmdline
	}
	return bn, nil
}

type kernelArgs struct{ kernel, initrd, cmdline string }

// netboot works out the kernel, initrd and command line of a stateless or statelite node:
// the contract with nodeinit (examples/nodeinit/doc.go).
func (g *Boot) netboot(v *cluster.View, n *cluster.Node, state string, srv netip.Addr) (kernelArgs, error) {
	img, err := NodeOSImage(v, n, state)
	if err != nil {
		return kernelArgs{}, err
	}
	o, err := v.Object("osimage", img, cluster.ObjectOptions{})
	if err != nil {
		return kernelArgs{}, fmt.Errorf("node %s: %w", n.Name, err)
	}
	k := kernelArgs{
		kernel: "xcat/osimage/" + img + "/kernel",
		initrd: "xcat/osimage/" + img + "/initrd-" + map[string]string{"netboot": "stateless", "statelite": "statelite", "sysclone": "sysclone"}[state] + ".gz",
	}
	if n.Kernel != "" {
		k.kernel = n.Kernel
	}
	if n.Initrd != "" {
		k.initrd = n.Initrd
	}
	base := g.BaseURL(srv)
	var args []string
	switch state {
	case "netboot":
		dir := o.Attrs["rootimgdir"]
		if dir == "" {
			return kernelArgs{}, fmt.Errorf("osimage %s: rootimgdir is not set", img)
		}
		url, err := g.imageURL(v, base, dir)
		if err != nil {
			return kernelArgs{}, fmt.Errorf("osimage %s: %w", img, err)
		}
		args = append(args, "imgurl="+url)
	case "statelite":
		root, err := ExportPath(img, o.Attrs["rootimgdir"])
		if err != nil {
			return kernelArgs{}, err
		}
		if t := o.Attrs["rootfstype"]; t != "" && t != "nfs" {
			return kernelArgs{}, fmt.Errorf("osimage %s: rootfstype %q: statelite boots from NFS only (rootfstype nfs or unset; a RAM root is provmethod netboot)", img, t)
		}
		args = append(args, fmt.Sprintf("root=nfs:%s:%s:%s", g.nfsServer(n, srv), root, g.nfsOptions(o.Attrs["nfsrootopts"])))
	case "sysclone":
		// nodeinit's sysclone mode: the image directory that imgcapture made, with its
		// layout and packed image (image.CloneLayout, image.CloneImageFile).
		url, err := g.syscloneURL(v, base, o.Attrs["rootimgdir"])
		if err != nil {
			return kernelArgs{}, fmt.Errorf("osimage %s: %w", img, err)
		}
		args = append(args, "provkit.sysclone="+url)
	}
	args = append(args, "NODE="+n.Name, "provkit.status="+base+"/api/v1/status")
	if n.SerialPort != "" {
		speed := n.SerialSpeed
		if speed == "" {
			speed = "115200"
		}
		c := "console=tty0 console=ttyS" + n.SerialPort + "," + speed
		if n.SerialFlow == "hard" {
			c += "n8r"
		}
		args = append(args, c)
	}
	for _, extra := range []string{o.Attrs["addkcmdline"], n.Kcmdline, n.AddKcmdline} {
		if extra != "" {
			args = append(args, extra)
		}
	}
	k.cmdline = strings.Join(args, " ")
	return k, nil
}

// nfsServer is the NFS server of a statelite node: noderes.nfsserver when set (an address
// or a name nodeinit resolves; <xcatmaster> is the node's boot server), else its boot
// server srv.
func (g *Boot) nfsServer(n *cluster.Node, srv netip.Addr) string {
	switch s := strings.TrimSpace(n.NFSServer); s {
	case "", "<xcatmaster>":
		return srv.String()
	default:
		if a, err := netip.ParseAddr(s); err == nil {
			return a.String()
		}
		if !strings.ContainsAny(s, ":/ ") {
			return s
		}
		return srv.String()
	}
}

// nfsOptions are the mount options of a statelite root: read-write (the server keeps
// the image read-only and lets each node write only its own writable paths, so the
// mount itself must allow writes), NFSv3 over TCP without a lock manager (provd serves
// no NLM), then provd's NFSOptions and the image's nfsrootopts.
func (g *Boot) nfsOptions(imageOpts string) string {
	opts := "rw,nolock,vers=3,proto=tcp,mountproto=tcp"
	for _, extra := range []string{g.NFSOptions, imageOpts} {
		if extra = strings.Trim(strings.TrimSpace(extra), ","); extra != "" {
			opts += "," + extra
		}
	}
	return opts
}

// BaseURL is provd's HTTP address as a node sees it.
func (g *Boot) BaseURL(srv netip.Addr) string {
	if g.HTTPPort == 80 || g.HTTPPort == 0 {
		return "http://" + srv.String()
	}
	return "http://" + netip.AddrPortFrom(srv, uint16(g.HTTPPort)).String()
}

// imageURL finds the packed root image in dir and returns its URL: dir must lie under
// site.installdir, which provd serves at /install/.
func (g *Boot) imageURL(v *cluster.View, base, dir string) (string, error) {
	inst := v.Site("installdir")
	if inst == "" {
		inst = "/install"
	}
	rel, err := filepath.Rel(inst, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("rootimgdir %s is not under site.installdir %s", dir, inst)
	}
	for _, f := range rootImages {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return base + "/install/" + path.Join(filepath.ToSlash(rel), f), nil
		}
	}
	return "", fmt.Errorf("no packed root image in %s (run packimage): looked for %s", dir, strings.Join(rootImages, ", "))
}

// syscloneURL is the URL of a sysclone osimage directory, which must lie under
// site.installdir and hold a captured layout and packed image.
func (g *Boot) syscloneURL(v *cluster.View, base, dir string) (string, error) {
	if dir == "" {
		return "", errors.New("rootimgdir is not set (imgcapture sets it)")
	}
	inst := v.Site("installdir")
	if inst == "" {
		inst = "/install"
	}
	rel, err := filepath.Rel(inst, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("rootimgdir %s is not under site.installdir %s", dir, inst)
	}
	for _, f := range []string{image.CloneLayout, image.CloneImageFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("no %s in %s (run imgcapture): %w", f, dir, err)
		}
	}
	return base + "/install/" + filepath.ToSlash(rel), nil
}

// ServerFor is the address of provd as node n sees it: noderes.tftpserver or xcatmaster
// when set, else provd's own address on the node's network, else site.master.
func (g *Boot) ServerFor(v *cluster.View, n *cluster.Node) netip.Addr {
	for _, s := range []string{n.TFTPServer, n.XCATMaster} {
		if s == "<xcatmaster>" {
			s = v.Site("master")
		}
		if a, err := netip.ParseAddr(s); err == nil {
			return a
		}
	}
	if n.IP.IsValid() {
		if a, ok := g.Addrs.Facing(n.IP); ok {
			return a
		}
	}
	a, _ := netip.ParseAddr(v.Site("master"))
	return a
}

// LocalAddrs caches this host's interface addresses (refreshed every few seconds) to
// answer "which of my addresses is on the node's subnet". The zero value works.
type LocalAddrs struct {
	mu   sync.Mutex
	at   time.Time
	list []netip.Prefix
	// AddrsFn lists the addresses; nil means net.InterfaceAddrs.
	AddrsFn func() ([]net.Addr, error)
}

// Facing returns this host's address on the subnet that contains ip.
func (l *LocalAddrs) Facing(ip netip.Addr) (netip.Addr, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.at) > 5*time.Second {
		fn := l.AddrsFn
		if fn == nil {
			fn = net.InterfaceAddrs
		}
		l.list = l.list[:0]
		if addrs, err := fn(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					l.list = append(l.list, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
				}
			}
		}
		l.at = time.Now()
	}
	for _, p := range l.list {
		if p.Masked().Contains(ip) {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// HTTPPort reads site.httpport (80 when unset).
func HTTPPort(v *cluster.View) (int, error) {
	s := v.Site("httpport")
	if s == "" {
		return 80, nil
	}
	p, err := strconv.Atoi(s)
	if err != nil || p <= 0 || p > 65535 {
		return 0, errors.New("site.httpport " + strconv.Quote(s) + " is not a port number")
	}
	return p, nil
}
