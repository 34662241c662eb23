package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is what nodeinit reads from the kernel command line. doc.go documents each
// parameter; ParseCmdline is the only place that reads them.
type Config struct {
	Node       string           // NODE=
	BootIF     net.HardwareAddr // BOOTIF=01-aa-bb-cc-dd-ee-ff (or aa:bb:cc:dd:ee:ff)
	Interface  string           // provkit.ifname=
	ImageURL   *url.URL         // imgurl=
	ImageSHA   []byte           // provkit.imgsha256=<hex>: checksum of the image as served
	NFS        *NFSRoot         // root=nfs:<server>:<path>[:<options>]
	Init       string           // provkit.init=, default /sbin/init
	StatusURL  *url.URL         // provkit.status=
	Rescue     bool             // provkit.rescue=1
	Modules    []string         // provkit.modules=a,b
	Overlay    bool             // provkit.overlay=1 (NFS): writable tmpfs over the read-only root
	CDSL       bool             // provkit.cdsl=1: apply the root's CDSL bind-mount plan for NODE=
	RootSize   string           // provkit.rootsize= (tmpfs size= for a RAM root)
	NetTimeout time.Duration    // provkit.nettimeout=<seconds>, default 60
	Debug      bool             // provkit.debug=1
	// DiscoverURL is provkit.discover=: discovery mode, no root; LLDPWait is
	// provkit.lldpwait=<seconds> (default 10), how long to listen for the switch's LLDP.
	DiscoverURL *url.URL
	LLDPWait    time.Duration
	// SyscloneURL is provkit.sysclone=: sysclone mode, the URL of the osimage directory
	// (layout.json, rootimg.sysclone) to lay onto the disks; Disk is provkit.disk=, the
	// device that receives the golden node's first disk (default: the same name).
	SyscloneURL *url.URL
	Disk        string
}

// NFSRoot is a root=nfs: parameter.
type NFSRoot struct {
	Server  string // host name or IPv4 address
	Path    string // exported path
	Options string // mount options as given
}

// ErrCmdline is wrapped by every error about the kernel command line.
var ErrCmdline = errors.New("bad kernel command line")

const defaultInit = "/sbin/init"

// splitCmdline splits a kernel command line into words the way the kernel does
// (next_arg): spaces separate words, double quotes group spaces into a value and are
// removed.
func splitCmdline(s string) []string {
	var words []string
	var b strings.Builder
	inQuote, inWord := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n'):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

// ParseCmdline reads the kernel command line. Parameters nodeinit does not know are
// ignored (the kernel's own, xCAT's XCAT=, FC=, ...). A known parameter with a bad value
// is an error naming it, since booting without it would do something else than asked.
func ParseCmdline(s string) (Config, error) {
	c := Config{Init: defaultInit, NetTimeout: 60 * time.Second, LLDPWait: 10 * time.Second}
	bad := func(k, v, why string) error {
		return fmt.Errorf("%w: %s=%q: %s", ErrCmdline, k, v, why)
	}
	var root string
	for _, w := range splitCmdline(s) {
		k, v, hasEq := strings.Cut(w, "=")
		if !hasEq {
			continue
		}
		switch k {
		case "NODE":
			if v == "" || strings.ContainsAny(v, "/ \x00") {
				return c, bad(k, v, "want a node name")
			}
			c.Node = v
		case "BOOTIF":
			mac, err := parseBootIF(v)
			if err != nil {
				return c, bad(k, v, err.Error())
			}
			c.BootIF = mac
		case "provkit.ifname":
			if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ ") {
				return c, bad(k, v, "want an interface name")
			}
			c.Interface = v
		case "imgurl":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return c, bad(k, v, "want an http:// URL of the packed image")
			}
			c.ImageURL = u
		case "root":
			root = v
		case "provkit.imgsha256":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return c, bad(k, v, "want the 64 hex digits of a SHA-256")
			}
			c.ImageSHA = b
		case "provkit.init":
			if !path.IsAbs(v) || path.Clean(v) != v {
				return c, bad(k, v, "want an absolute path like /sbin/init")
			}
			c.Init = v
		case "provkit.status":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return c, bad(k, v, "want the http:// URL that receives status reports")
			}
			c.StatusURL = u
		case "provkit.rescue":
			b, err := parseBool(v)
			if err != nil {
				return c, bad(k, v, err.Error())
			}
			c.Rescue = b
		case "provkit.modules":
			for _, m := range strings.Split(v, ",") {
				if m = strings.TrimSpace(m); m != "" {
					if strings.ContainsAny(m, "/ ") {
						return c, bad(k, v, "want module names separated by commas")
					}
					c.Modules = append(c.Modules, m)
				}
			}
		case "provkit.cdsl":
			b, err := parseBool(v)
			if err != nil {
				return c, bad(k, v, err.Error())
			}
			c.CDSL = b
		case "provkit.overlay":
			b, err := parseBool(v)
			if err != nil {
				return c, bad(k, v, err.Error())
			}
			c.Overlay = b
		case "provkit.rootsize":
			if !validSize(v) {
				return c, bad(k, v, "want a tmpfs size: 2g, 1536m or 80%")
			}
			c.RootSize = v
		case "provkit.nettimeout":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 3600 {
				return c, bad(k, v, "want seconds from 1 to 3600")
			}
			c.NetTimeout = time.Duration(n) * time.Second
		case "provkit.discover":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return c, bad(k, v, "want the http:// URL of provd's discovery API")
			}
			c.DiscoverURL = u
		case "provkit.lldpwait":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 300 {
				return c, bad(k, v, "want seconds from 0 to 300")
			}
			c.LLDPWait = time.Duration(n) * time.Second
		case "provkit.sysclone":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return c, bad(k, v, "want the http:// URL of the sysclone osimage directory")
			}
			c.SyscloneURL = u
		case "provkit.disk":
			if !strings.HasPrefix(v, "/dev/") || path.Clean(v) != v || strings.ContainsAny(v, " ,") {
				return c, bad(k, v, "want a block device like /dev/sda")
			}
			c.Disk = v
		case "provkit.debug":
			b, err := parseBool(v)
			if err != nil {
				return c, bad(k, v, err.Error())
			}
			c.Debug = b
		}
	}
	if root != "" {
		nfs, ok, err := parseNFSRoot(root)
		if err != nil {
			return c, bad("root", root, err.Error())
		}
		if ok {
			c.NFS = nfs
		} else if c.ImageURL == nil {
			return c, bad("root", root, "nodeinit boots imgurl= or root=nfs:<server>:<path>[:<options>]")
		}
	}
	if c.SyscloneURL != nil {
		if c.ImageURL != nil || c.NFS != nil || c.DiscoverURL != nil {
			return c, fmt.Errorf("%w: provkit.sysclone= installs to disk: drop imgurl=/root=/provkit.discover=", ErrCmdline)
		}
		if c.Node == "" {
			return c, fmt.Errorf("%w: provkit.sysclone= needs NODE= (the clone's hostname)", ErrCmdline)
		}
		return c, nil
	}
	if c.Disk != "" {
		return c, fmt.Errorf("%w: provkit.disk= without provkit.sysclone=", ErrCmdline)
	}
	if c.DiscoverURL != nil {
		if c.ImageURL != nil || c.NFS != nil {
			return c, fmt.Errorf("%w: provkit.discover= boots no root: drop imgurl=/root=", ErrCmdline)
		}
		return c, nil
	}
	if c.ImageURL != nil && c.NFS != nil {
		return c, fmt.Errorf("%w: both imgurl= and root=nfs: given; pick one", ErrCmdline)
	}
	if c.ImageSHA != nil && c.ImageURL == nil {
		return c, fmt.Errorf("%w: provkit.imgsha256= without imgurl=", ErrCmdline)
	}
	if c.CDSL && c.Node == "" {
		return c, fmt.Errorf("%w: provkit.cdsl=1 needs NODE= (whose CDSL tree to bind)", ErrCmdline)
	}
	if c.ImageURL == nil && c.NFS == nil {
		return c, fmt.Errorf("%w: no root: give imgurl=http://... (a packed image) or root=nfs:<server>:<path> (or provkit.discover=<url> for discovery)", ErrCmdline)
	}
	return c, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "on":
		return true, nil
	case "0", "no", "n", "false", "off", "":
		return false, nil
	}
	return false, errors.New("want 1 or 0")
}

func validSize(v string) bool {
	if v == "" {
		return false
	}
	num := strings.TrimRight(v, "kKmMgG%")
	if len(v)-len(num) > 1 {
		return false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return err == nil && n > 0 && (!strings.HasSuffix(v, "%") || n <= 100)
}

// parseBootIF reads the BOOTIF= of pxelinux and xCAT's iPXE scripts,
// "01-aa-bb-cc-dd-ee-ff" (ARP hardware type 1 first), or a plain MAC.
func parseBootIF(v string) (net.HardwareAddr, error) {
	s := v
	if len(s) == 20 && strings.HasPrefix(s, "01-") {
		s = s[3:]
	}
	mac, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
	if err != nil || len(mac) != 6 {
		return nil, errors.New("want 01-aa-bb-cc-dd-ee-ff or aa:bb:cc:dd:ee:ff")
	}
	return mac, nil
}

// parseNFSRoot reads root=nfs:<server>:<path>[:<options>] (dracut's syntax, which xCAT
// writes). ok is false when root is not an NFS root at all.
func parseNFSRoot(v string) (r *NFSRoot, ok bool, err error) {
	rest, found := strings.CutPrefix(v, "nfs:")
	if !found {
		return nil, false, nil
	}
	server, rest, found := strings.Cut(rest, ":")
	if !found || server == "" {
		return nil, true, errors.New("want nfs:<server>:<path>[:<options>]")
	}
	p, opts, _ := strings.Cut(rest, ":")
	if !path.IsAbs(p) {
		return nil, true, fmt.Errorf("export path %q is not absolute", p)
	}
	if strings.ContainsAny(server, "/ ") {
		return nil, true, fmt.Errorf("server %q", server)
	}
	return &NFSRoot{Server: server, Path: p, Options: opts}, true, nil
}

// mountOptions returns the option string for the kernel NFS client: nolock,vers=3,
// proto=tcp (and mountproto=tcp) unless the command line says otherwise, read-only
// unless it says rw, the port and mountport as given, and addr= (the text mount API
// needs the server's address; mount.nfs usually adds it).
func (r *NFSRoot) mountOptions(addr netip.Addr) string {
	var opts []string
	set := map[string]bool{}
	for _, o := range strings.Split(r.Options, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		k, _, _ := strings.Cut(o, "=")
		if k == "addr" {
			continue // ours wins: it is the address we resolved
		}
		set[k] = true
		opts = append(opts, o)
	}
	if set["nfsvers"] {
		set["vers"] = true
	}
	for _, d := range []struct{ key, opt string }{
		{"nolock", "nolock"}, {"vers", "vers=3"}, {"proto", "proto=tcp"}, {"mountproto", "mountproto=tcp"},
	} {
		if !set[d.key] && !(d.key == "nolock" && set["lock"]) {
			opts = append(opts, d.opt)
		}
	}
	if !set["ro"] && !set["rw"] {
		opts = append([]string{"ro"}, opts...)
	}
	opts = append(opts, "addr="+addr.String())
	return strings.Join(opts, ",")
}

// readOnly reports whether the options mount read-only.
func (r *NFSRoot) readOnly() bool {
	return !slices.Contains(strings.Split(r.Options, ","), "rw")
}

// mustAddr returns host as an address, or a placeholder for names (resolved at boot).
func mustAddr(host string) netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return a
	}
	return netip.IPv4Unspecified()
}
