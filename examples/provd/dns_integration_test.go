//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dns"
	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// TestNetnsDNS runs provd's DNS in a network namespace and asks it with real resolvers,
// dig and Go's: the names makehosts writes (node, FQDN, hosts.hostnames alias,
// otherinterfaces, nics), PTR, NXDOMAIN, forwarding to an upstream on the namespace's
// loopback (our own server standing in for site.forwarders), and a node added to the
// tables while provd runs, answered without a reload.
func TestNetnsDNS(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("dig", "ip"))
	ns := netns.New(t, "dns")
	ns.MustIP(t, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	ns.MustIP(t, "addr", "add", "10.97.2.1/24", "dev", "d0")
	ns.MustIP(t, "link", "set", "d0", "up")
	ns.MustIP(t, "link", "set", "d1", "up")

	// The upstream: example.com, on 127.0.0.1:5353 inside the namespace.
	up, err := dns.NewTable([]dns.Zone{{Name: "example.com."}}, []dns.Host{{Name: "www.example.com.", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	upSrv := &dns.Server{Records: up}
	if err := ns.Do(func() error {
		pc, err := net.ListenPacket("udp", "127.0.0.1:5353")
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:5353")
		if err != nil {
			return err
		}
		upSrv.PacketConn, upSrv.Listener = pc, ln
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	upCtx, upStop := context.WithCancel(context.Background())
	upDone := make(chan error, 1)
	go func() { upDone <- upSrv.Serve(upCtx) }()
	t.Cleanup(func() { upStop(); <-upDone })

	dir := t.TempDir()
	db := filepath.Join(dir, "provkit.db")
	ctx := context.Background()
	store, err := cluster.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	put := func(table string, rows ...cluster.Row) {
		t.Helper()
		if err := store.Update(ctx, func(tx cluster.Tx) error { return tx.Put(table, rows...) }); err != nil {
			t.Fatal(err)
		}
	}
	put("site", cluster.Row{"key": "domain", "value": "cluster.test"}, cluster.Row{"key": "forwarders", "value": "127.0.0.1:5353"},
		cluster.Row{"key": "master", "value": "10.97.2.1"}, cluster.Row{"key": "tftpdir", "value": dir}, cluster.Row{"key": "installdir", "value": dir})
	put("networks", cluster.Row{"netname": "mgt", "net": "10.97.2.0", "mask": "255.255.255.0"}, cluster.Row{"netname": "bmc", "net": "10.97.3.0", "mask": "255.255.255.0"})
	put("nodelist", cluster.Row{"node": "n1", "groups": "compute"}, cluster.Row{"node": "n2", "groups": "compute"})
	put("hosts", cluster.Row{"node": "compute", "ip": `|n(\d+)|10.97.2.($1+10)|`, "otherinterfaces": `|n(\d+)|-bmc!10.97.3.($1+10)|`},
		cluster.Row{"node": "n1", "hostnames": "login"})
	put("nics", cluster.Row{"node": "n2", "nicips": "ib0!10.97.4.12"})

	provd := vmtest.BuildGo(t, "github.com/provkit/provkit/examples/provd")
	pctx, pstop := context.WithCancel(context.Background())
	cmd := ns.Command(pctx, provd, "--db", db, "--dhcp=false", "--tftp", "", "--http", "127.0.0.1:8080", "--dns", "10.97.2.1:53", "--poll", "100ms")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	log := &lockedBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.add(sc.Text())
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		pstop()
		if err := <-done; err != nil && pctx.Err() == nil {
			t.Errorf("provd: %v", err)
		}
		if t.Failed() {
			t.Logf("provd log:\n%s", strings.Join(log.all(), "\n"))
		}
	})

	digTry := func(args ...string) (string, error) {
		out, err := ns.Command(context.Background(), append([]string{"dig", "@10.97.2.1", "+time=2", "+tries=2"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	dig := func(args ...string) string {
		t.Helper()
		out, err := digTry(args...)
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// Wait until provd answers (it opens the store and loads the view first).
	for i := 0; ; i++ {
		if out, err := digTry("+short", "n1.cluster.test"); err == nil && out == "10.97.2.11" {
			break
		}
		if i > 300 {
			t.Fatalf("provd's DNS does not answer n1.cluster.test within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, tc := range []struct{ args, want string }{
		{"+short n1.cluster.test", "10.97.2.11"},
		{"+short N2.CLUSTER.TEST", "10.97.2.12"},
		{"+short login.cluster.test", "n1.cluster.test.\n10.97.2.11"},
		{"+short n1-bmc.cluster.test", "10.97.3.11"},
		{"+short n2-ib0.cluster.test", "10.97.4.12"},
		{"+short -x 10.97.2.12", "n2.cluster.test."},
		{"+short -x 10.97.3.11", "n1-bmc.cluster.test."},
		{"+short www.example.com", "192.0.2.1"},
		{"+tcp +short www.example.com", "192.0.2.1"},
	} {
		if got := dig(strings.Fields(tc.args)...); got != tc.want {
			t.Errorf("dig %s = %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := dig("nosuch.cluster.test"); !strings.Contains(got, "status: NXDOMAIN") || !strings.Contains(got, "flags: qr aa rd ra") {
		t.Errorf("dig nosuch.cluster.test:\n%s", got)
	}
	if got := dig("+short", "SOA", "cluster.test"); !strings.Contains(got, "hostmaster.cluster.test.") {
		t.Errorf("dig SOA cluster.test = %q", got)
	}

	// Go's resolver, as programs on the nodes use it (the dial enters the namespace).
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, "10.97.2.1:53")
			return err
		})
		return c, err
	}}
	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := res.LookupHost(lctx, "login.cluster.test"); err != nil || !slices.Equal(got, []string{"10.97.2.11"}) {
		t.Errorf("Go LookupHost(login.cluster.test) = %v, %v", got, err)
	}
	if got, err := res.LookupAddr(lctx, "10.97.2.11"); err != nil || !slices.Equal(got, []string{"n1.cluster.test."}) {
		t.Errorf("Go LookupAddr(10.97.2.11) = %v, %v", got, err)
	}
	if got, err := res.LookupHost(lctx, "www.example.com"); err != nil || !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("Go LookupHost(www.example.com) = %v, %v", got, err)
	}

	// A node added while provd runs is answered without a reload or a restart.
	if got := dig("+short", "n3.cluster.test"); got != "" {
		t.Fatalf("n3 before it exists: %q", got)
	}
	put("nodelist", cluster.Row{"node": "n3", "groups": "compute"})
	var got string
	for i := 0; i < 100; i++ {
		if got = dig("+short", "n3.cluster.test"); got != "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != "10.97.2.13" {
		t.Errorf("n3 after nodeadd = %q, want 10.97.2.13", got)
	}
	if got := dig("+short", "-x", "10.97.2.13"); got != "n3.cluster.test." {
		t.Errorf("dig -x 10.97.2.13 = %q", got)
	}
	t.Logf("%s", fmt.Sprint(len(log.all()), " provd log lines"))
}
