package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSplitCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a b  c\n", []string{"a", "b", "c"}},
		{`x="a b" y=c`, []string{"x=a b", "y=c"}},
		{`"quoted word" z`, []string{"quoted word", "z"}},
		{`k=""`, []string{"k="}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := splitCmdline(tt.in); !cmp.Equal(got, tt.want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	tests := []struct {
		name string
		in   string
		want func(c *Config)
		err  string
	}{
		{
			name: "xCAT stateless line",
			in: "BOOT_IMAGE=kernel imgurl=http://10.0.0.1:80//install/netboot/rootimg.cpio.gz XCAT=10.0.0.1:3001 NODE=node01 FC=0 " +
				"XCATHTTPPORT=80 console=tty0 console=ttyS0,115200 BOOTIF=01-52-54-00-12-34-56 provkit.status=http://10.0.0.1:8080/status",
			want: func(c *Config) {
				c.Node, c.BootIF = "node01", mac
			},
		},
		{
			name: "nfs root with everything",
			in: "root=nfs:10.0.0.1:/install/rootimg:ro,port=2049,mountport=2049 NODE=n2 BOOTIF=52:54:00:12:34:56 provkit.init=/lib/systemd/systemd " +
				"provkit.rescue=1 provkit.modules=e1000e,ixgbe provkit.overlay=yes provkit.rootsize=80% provkit.nettimeout=20 provkit.debug=1 provkit.ifname=eth1",
			want: func(c *Config) {
				c.Node, c.BootIF, c.Init, c.Rescue, c.Overlay, c.Debug = "n2", mac, "/lib/systemd/systemd", true, true, true
				c.NFS = &NFSRoot{Server: "10.0.0.1", Path: "/install/rootimg", Options: "ro,port=2049,mountport=2049"}
				c.Modules, c.RootSize, c.NetTimeout, c.Interface = []string{"e1000e", "ixgbe"}, "80%", 20*time.Second, "eth1"
			},
		},
		{name: "no root", in: "NODE=n1 console=ttyS0", err: "no root"},
		{name: "both roots", in: "imgurl=http://a/x root=nfs:a:/x", err: "pick one"},
		{name: "disk root", in: "root=/dev/sda1", err: "root="},
		{name: "disk root with imgurl", in: "root=/dev/ram0 imgurl=http://a/x", want: func(c *Config) {}},
		{name: "ftp url", in: "imgurl=ftp://a/x", err: "imgurl="},
		{name: "relative init", in: "imgurl=http://a/x provkit.init=sbin/init", err: "provkit.init="},
		{name: "bad bootif", in: "imgurl=http://a/x BOOTIF=zz", err: "BOOTIF="},
		{name: "bad rescue", in: "imgurl=http://a/x provkit.rescue=maybe", err: "provkit.rescue="},
		{name: "bad size", in: "imgurl=http://a/x provkit.rootsize=lots", err: "provkit.rootsize="},
		{name: "bad timeout", in: "imgurl=http://a/x provkit.nettimeout=0", err: "provkit.nettimeout="},
		{name: "nfs relative path", in: "root=nfs:server:export", err: "not absolute"},
		{name: "nfs no path", in: "root=nfs:server", err: "root="},
		{name: "status not url", in: "imgurl=http://a/x provkit.status=10.0.0.1", err: "provkit.status="},
		{name: "checksum", in: "imgurl=http://a/x provkit.imgsha256=" + strings.Repeat("ab", 32), want: func(c *Config) {
			c.ImageSHA = bytes.Repeat([]byte{0xab}, 32)
		}},
		{name: "short checksum", in: "imgurl=http://a/x provkit.imgsha256=abcd", err: "provkit.imgsha256="},
		{name: "sysclone", in: "NODE=n1 provkit.sysclone=http://10.0.0.1:3000/install/sysclone/images/gold provkit.disk=/dev/sdb provkit.status=http://10.0.0.1/s", want: func(c *Config) {
			c.Node, c.Disk = "n1", "/dev/sdb"
			c.SyscloneURL, _ = url.Parse("http://10.0.0.1:3000/install/sysclone/images/gold")
		}},
		{name: "sysclone without node", in: "provkit.sysclone=http://a/x", err: "needs NODE="},
		{name: "sysclone and imgurl", in: "NODE=n1 provkit.sysclone=http://a/x imgurl=http://a/y", err: "installs to disk"},
		{name: "sysclone not http", in: "NODE=n1 provkit.sysclone=/install/x", err: "provkit.sysclone="},
		{name: "disk without sysclone", in: "imgurl=http://a/x provkit.disk=/dev/sda", err: "without provkit.sysclone"},
		{name: "disk not a device", in: "NODE=n1 provkit.sysclone=http://a/x provkit.disk=sda", err: "provkit.disk="},
		{name: "cdsl", in: "imgurl=http://a/x NODE=n1 provkit.cdsl=1", want: func(c *Config) { c.Node, c.CDSL = "n1", true }},
		{name: "cdsl without node", in: "imgurl=http://a/x provkit.cdsl=1", err: "provkit.cdsl=1 needs NODE="},
		{name: "bad cdsl", in: "imgurl=http://a/x NODE=n1 provkit.cdsl=both", err: "provkit.cdsl="},
		{name: "checksum without imgurl", in: "root=nfs:a:/x provkit.imgsha256=" + strings.Repeat("ab", 32), err: "without imgurl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCmdline(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrCmdline) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseCmdline(%q) = %v, want ErrCmdline mentioning %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCmdline(%q) = %v", tt.in, err)
			}
			want := Config{Init: defaultInit, NetTimeout: 60 * time.Second, LLDPWait: 10 * time.Second, ImageURL: got.ImageURL, StatusURL: got.StatusURL}
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ParseCmdline (-want +got):\n%s", diff)
			}
		})
	}
	c, err := ParseCmdline("imgurl=http://10.0.0.1:80//install/rootimg.cpio.gz")
	if err != nil || c.ImageURL.String() != "http://10.0.0.1:80//install/rootimg.cpio.gz" {
		t.Errorf("xCAT's double-slash URL: %v %v", c.ImageURL, err)
	}
}

func TestNFSMountOptions(t *testing.T) {
	addr := netip.MustParseAddr("10.98.2.1")
	tests := []struct{ opts, want string }{
		{"", "ro,nolock,vers=3,proto=tcp,mountproto=tcp,addr=10.98.2.1"},
		{"ro,port=2049,mountport=2049,noacl", "ro,port=2049,mountport=2049,noacl,nolock,vers=3,proto=tcp,mountproto=tcp,addr=10.98.2.1"},
		{"rw,nfsvers=3,lock,proto=tcp,addr=1.2.3.4", "rw,nfsvers=3,lock,proto=tcp,mountproto=tcp,addr=10.98.2.1"},
		{"noac", "ro,noac,nolock,vers=3,proto=tcp,mountproto=tcp,addr=10.98.2.1"},
	}
	for _, tt := range tests {
		r := &NFSRoot{Server: "s", Path: "/x", Options: tt.opts}
		if got := r.mountOptions(addr); got != tt.want {
			t.Errorf("mountOptions(%q) = %q, want %q", tt.opts, got, tt.want)
		}
	}
	if (&NFSRoot{Options: "rw"}).readOnly() || !(&NFSRoot{Options: "noac"}).readOnly() {
		t.Errorf("readOnly wrong")
	}
}

// FuzzParseCmdline: never panics; an accepted line, written back from its Config,
// parses to the same Config.
func FuzzParseCmdline(f *testing.F) {
	f.Add("imgurl=http://10.0.0.1//install/rootimg.cpio.gz NODE=n1 BOOTIF=01-52-54-00-12-34-56 provkit.status=http://10.0.0.1/s")
	f.Add("root=nfs:10.0.0.1:/x:ro,port=2049 provkit.modules=a,b provkit.rescue=1 provkit.overlay=1")
	f.Add(`x="a b" imgurl=http://h/"q" provkit.rootsize=50%`)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCmdline(in)
		if err != nil {
			if !errors.Is(err, ErrCmdline) {
				t.Fatalf("error %v does not wrap ErrCmdline", err)
			}
			return
		}
		var w []string
		q := func(k, v string) { w = append(w, `"`+k+"="+v+`"`) }
		if c.Node != "" {
			q("NODE", c.Node)
		}
		if c.BootIF != nil {
			q("BOOTIF", c.BootIF.String())
		}
		if c.ImageURL != nil {
			q("imgurl", c.ImageURL.String())
		}
		if c.ImageSHA != nil {
			q("provkit.imgsha256", hex.EncodeToString(c.ImageSHA))
		}
		if c.NFS != nil {
			v := "nfs:" + c.NFS.Server + ":" + c.NFS.Path
			if c.NFS.Options != "" {
				v += ":" + c.NFS.Options
			}
			q("root", v)
		}
		if c.StatusURL != nil {
			q("provkit.status", c.StatusURL.String())
		}
		q("provkit.init", c.Init)
		if c.Rescue {
			q("provkit.rescue", "1")
		}
		if c.Overlay {
			q("provkit.overlay", "1")
		}
		if c.Debug {
			q("provkit.debug", "1")
		}
		if len(c.Modules) > 0 {
			q("provkit.modules", strings.Join(c.Modules, ","))
		}
		if c.RootSize != "" {
			q("provkit.rootsize", c.RootSize)
		}
		if c.Interface != "" {
			q("provkit.ifname", c.Interface)
		}
		if c.SyscloneURL != nil {
			q("provkit.sysclone", c.SyscloneURL.String())
		}
		if c.Disk != "" {
			q("provkit.disk", c.Disk)
		}
		if c.DiscoverURL != nil {
			q("provkit.discover", c.DiscoverURL.String())
		}
		q("provkit.lldpwait", strconv.Itoa(int(c.LLDPWait/time.Second)))
		if strings.Count(strings.Join(w, ""), `"`) != 2*len(w) {
			return // a value holding a quote cannot be written back on a kernel command line
		}
		c2, err := ParseCmdline(strings.Join(w, " ") + " provkit.nettimeout=" + strconv.Itoa(int(c.NetTimeout/time.Second)))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", w, err)
		}
		urls := cmp.Transformer("url", func(u *url.URL) string {
			if u == nil {
				return "<nil>"
			}
			return u.String()
		})
		if diff := cmp.Diff(c, c2, urls); diff != "" {
			t.Fatalf("round trip differs (-first +second):\n%s", diff)
		}
	})
}
