// Package bootconf renders the per-node boot configurations that xCAT's nodeset writes
// (pxelinux, xNBA/iPXE for BIOS and UEFI, GRUB2), byte for byte in xCAT's formats, and
// tells from a requested file name which node and which format a boot loader wants. It
// is a pure codec: no files, no network. Package tftp serves its output on request.
//
// The formats follow xCAT's pxe.pm, xnba.pm and grub2.pm (see shared/xcat/artifacts.md
// §4), quirks included: pxelinux's one-space indent of KERNEL and APPEND and two-space
// IPAPPEND, GRUB2's missing final newline, and paths kept as given (xCAT's
// "compute//kernel" double slash survives).
package bootconf

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// A Format is one kind of boot configuration file.
type Format int

// Formats.
const (
	PXELinux Format = iota + 1 // pxelinux.cfg/<node>, pxelinux.cfg/01-<mac>, pxelinux.cfg/<IP hex>
	XNBA                       // xcat/xnba/nodes/<node>: iPXE script for BIOS
	XNBAUEFI                   // xcat/xnba/nodes/<node>.uefi: iPXE script for UEFI (efistub)
	GRUB2                      // boot/grub2/<node>, grub.cfg-01-<mac>, grub.cfg-<IP hex>
)

func (f Format) String() string {
	switch f {
	case PXELinux:
		return "pxelinux"
	case XNBA:
		return "xnba"
	case XNBAUEFI:
		return "xnba-uefi"
	case GRUB2:
		return "grub2"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// A Node is what a boot configuration says about one node. Paths are relative to the
// TFTP root, as xCAT stores them in bootparams (e.g. "xcat/osimage/<image>/kernel").
type Node struct {
	Name string // node name
	// State is the boot state as chain.currstate holds it: "netboot debian12-x86_64-compute",
	// "statelite ...", "install ...", "boot", "offline", or empty. It is written as the
	// first-line comment. "boot" (or no Kernel) gives a local-boot config; "offline" none.
	State string
	// NetBoot is noderes.netboot: "pxe", "xnba", "grub2", "grub2-tftp" or "grub2-http".
	// When set, only that loader's formats are rendered (others: ErrNoConfig); when empty,
	// every format is. "grub2-http" makes GRUB2 fetch over HTTP.
	NetBoot string
	Kernel  string // kernel path; "kernel!hypervisor" for a multiboot (Xen) kernel
	Initrd  string // initrd path
	Cmdline string // kernel command line (kcmdline plus addkcmdline), without BOOTIF

	MAC net.HardwareAddr // the installnic's MAC
	IP  netip.Addr       // the node's IPv4 address

	// Server is the TFTP/HTTP server as the node sees it (noderes.tftpserver or the
	// management node's address facing the node): GRUB2's "set root=tftp,<Server>".
	Server netip.Addr
	// HTTPPort is site.httpport; 0 means 80. iPXE scripts and grub2-http use it.
	HTTPPort int
	// TFTPDir is site.tftpdir as seen over HTTP; empty means "/tftpboot".
	TFTPDir string

	UEFI       bool // GRUB2 on x86 UEFI: linuxefi/initrdefi
	NoIPAppend bool // pxelinux: leave out "IPAPPEND 2" (xCAT does for fedora12/13)
	Debug      bool // GRUB2: "set debug=all" (site.xcatdebugmode 1 or 2)
	ISCSI      bool // xNBA local boot: "hdboot" instead of "exit"
}

// ErrNoConfig is returned (wrapped) when a node has no config of the asked format: its
// state is offline, or its netboot loader is another one. It wraps fs.ErrNotExist.
var ErrNoConfig = fmt.Errorf("bootconf: no boot config: %w", fs.ErrNotExist)

// ErrBadNode is returned (wrapped) for a Node that cannot be rendered.
var ErrBadNode = errors.New("bootconf: bad node")

// stateWord is the first word of the state ("netboot", "boot", ...).
func (n Node) stateWord() string {
	w, _, _ := strings.Cut(strings.TrimSpace(n.State), " ")
	return w
}

// localBoot reports whether the config boots the local disk.
func (n Node) localBoot() bool { return n.stateWord() == "boot" || n.Kernel == "" }

// Serves reports whether the node's netboot loader reads format f.
func (n Node) Serves(f Format) bool {
	switch n.NetBoot {
	case "":
		return true
	case "pxe":
		return f == PXELinux
	case "xnba":
		return f == XNBA || f == XNBAUEFI
	case "grub2", "grub2-tftp", "grub2-http":
		return f == GRUB2
	}
	return false
}

func (n Node) check() error {
	for _, s := range []struct{ what, v string }{
		{"name", n.Name}, {"state", n.State}, {"kernel", n.Kernel}, {"initrd", n.Initrd},
		{"cmdline", n.Cmdline}, {"tftpdir", n.TFTPDir},
	} {
		if strings.ContainsAny(s.v, "\n\r\x00") {
			return fmt.Errorf("%w: node %q: %s %q has a line break or NUL", ErrBadNode, n.Name, s.what, s.v)
		}
	}
	if n.Name == "" {
		return fmt.Errorf("%w: node without a name", ErrBadNode)
	}
	if n.HTTPPort < 0 || n.HTTPPort > 65535 {
		return fmt.Errorf("%w: node %q: HTTP port %d", ErrBadNode, n.Name, n.HTTPPort)
	}
	return nil
}

// Render returns node's config in format f. It fails with ErrNoConfig (which wraps
// fs.ErrNotExist) when the node has none in that format, and ErrBadNode when a field
// would break the file (a line break in the command line, say).
func Render(f Format, n Node) ([]byte, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	if n.stateWord() == "offline" || !n.Serves(f) {
		return nil, fmt.Errorf("node %q, %s: %w", n.Name, f, ErrNoConfig)
	}
	var b []byte
	switch f {
	case PXELinux:
		b = appendPXELinux(b, n)
	case XNBA, XNBAUEFI:
		if !n.localBoot() && chainsPXELinux(n.Kernel) {
			return nil, fmt.Errorf("%w: node %q: kernel %q needs xnba's pxelinux chaining, which is not rendered", ErrBadNode, n.Name, n.Kernel)
		}
		b = appendXNBA(b, n, f == XNBAUEFI)
	case GRUB2:
		b = appendGRUB2(b, n)
	default:
		return nil, fmt.Errorf("bootconf: unknown format %d", int(f))
	}
	return b, nil
}

func appendLine(b []byte, parts ...string) []byte {
	for _, p := range parts {
		b = append(b, p...)
	}
	return append(b, '\n')
}

// appendPXELinux writes pxelinux.cfg/<node> as pxe.pm does.
func appendPXELinux(b []byte, n Node) []byte {
	if n.State != "" {
		b = appendLine(b, "#", n.State)
	}
	b = appendLine(b, "DEFAULT xCAT")
	b = appendLine(b, "LABEL xCAT")
	if n.localBoot() {
		return appendLine(b, "LOCALBOOT 0")
	}
	if kernel, hyp, ok := strings.Cut(n.Kernel, "!"); ok {
		b = appendLine(b, " KERNEL mboot.c32")
		return appendLine(b, " APPEND ", hyp, " --- ", kernel, " ", n.Cmdline, " --- ", n.Initrd)
	}
	b = appendLine(b, " KERNEL ", n.Kernel)
	if n.Initrd != "" || n.Cmdline != "" {
		b = append(b, " APPEND "...)
		if n.Initrd != "" {
			b = append(b, "initrd="+n.Initrd+" "...)
		}
		b = appendLine(b, n.Cmdline)
	}
	if !n.NoIPAppend {
		b = appendLine(b, "  IPAPPEND 2")
	}
	return b
}

// chainsPXELinux reports the kernels for which xnba.pm chains to pxelinux: multiboot
// ("a!b"), COM32 modules and memdisk.
func chainsPXELinux(kernel string) bool {
	return strings.Contains(kernel, "!") || strings.HasSuffix(kernel, ".c32") || strings.HasSuffix(kernel, "memdisk")
}

// server is iPXE's "${next-server}", with the port when it is not 80.
func (n Node) ipxeServer() string {
	if n.HTTPPort != 0 && n.HTTPPort != 80 {
		return "${next-server}:" + strconv.Itoa(n.HTTPPort)
	}
	return "${next-server}"
}

func (n Node) tftpDir() string {
	if n.TFTPDir == "" {
		return "/tftpboot"
	}
	return n.TFTPDir
}

// appendXNBA writes xcat/xnba/nodes/<node> (or .uefi) as xnba.pm does.
func appendXNBA(b []byte, n Node, uefi bool) []byte {
	b = appendLine(b, "#!gpxe")
	if n.State != "" {
		b = appendLine(b, "#", n.State)
	}
	if n.localBoot() {
		if n.ISCSI && !uefi {
			return appendLine(b, "hdboot")
		}
		return appendLine(b, "exit")
	}
	base := "http://" + n.ipxeServer() + n.tftpDir() + "/"
	b = appendLine(b, "imgfetch -n kernel ", base, n.Kernel)
	b = appendLine(b, "imgload kernel")
	args := "imgargs kernel BOOTIF=${netX/mac}"
	if n.Cmdline != "" {
		args = "imgargs kernel " + n.Cmdline + " BOOTIF=01-${netX/mac:hexhyp}"
	}
	if uefi && n.Initrd != "" {
		args += " initrd=initrd"
	}
	b = appendLine(b, args)
	if n.Initrd != "" {
		b = appendLine(b, "imgfetch -n initrd ", base, n.Initrd)
	}
	return appendLine(b, "imgexec kernel")
}

// appendGRUB2 writes boot/grub2/<node> as grub2.pm does: no newline after the final "}".
func appendGRUB2(b []byte, n Node) []byte {
	if n.State != "" {
		b = appendLine(b, "#", n.State)
	}
	if n.Debug {
		b = appendLine(b, "set debug=all")
	}
	b = appendLine(b, "set timeout=5")
	if n.localBoot() {
		return b
	}
	proto, prefix, root := "tftp", "", n.Server.String()
	if n.NetBoot == "grub2-http" {
		proto, prefix = "http", n.tftpDir()
		if n.HTTPPort != 0 && n.HTTPPort != 80 {
			root += ":" + strconv.Itoa(n.HTTPPort)
		}
	}
	if !n.Server.IsValid() {
		root = ""
	}
	linux, initrd := "linux", "initrd"
	if n.UEFI {
		linux, initrd = "linuxefi", "initrdefi"
	}
	b = appendLine(b, `set default="xCAT OS Deployment"`)
	b = appendLine(b, `menuentry "xCAT OS Deployment" {`)
	b = appendLine(b, "    insmod http")
	b = appendLine(b, "    insmod tftp")
	b = appendLine(b, "    set root=", proto, ",", root)
	b = appendLine(b, "    echo Loading Install kernel ...")
	cmd := "BOOTIF=$net_default_mac"
	if n.Cmdline != "" {
		cmd = n.Cmdline + " " + cmd
	}
	b = appendLine(b, "    ", linux, " ", prefix, "/", n.Kernel, " ", cmd)
	b = appendLine(b, "    echo Loading initial ramdisk ...")
	if n.Initrd != "" {
		b = appendLine(b, "    ", initrd, " ", prefix, "/", n.Initrd)
	}
	return append(b, '}')
}
