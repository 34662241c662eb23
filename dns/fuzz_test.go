package dns

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
)

// FuzzParseZoneFile reads arbitrary zone files (makedns reads the files in site.binddir,
// which people edit). Property: whatever parses renders, and the rendering reads back as
// the same zone.
func FuzzParseZoneFile(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/db.*")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("@ IN SOA ns hostmaster 1 2 3 4 5\nn1 3600 IN A 10.97.0.1\n$TTL 5\nx IN TXT \"a b\"\n"))
	f.Add([]byte("$ORIGIN cluster.test.\n@ 30 IN SOA ns.x. h.x. 1 2 3 4 5\n@ IN NS a.\n@ IN NS b.\n*.w IN CNAME n1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		zf, err := ParseZoneFile(bytes.NewReader(data), "cluster.test.", "fuzz")
		if err != nil {
			return
		}
		var b bytes.Buffer
		if _, err := zf.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		back, err := ParseZoneFile(bytes.NewReader(b.Bytes()), "cluster.test.", "rendered")
		if err != nil {
			t.Fatalf("our rendering does not read back: %v\n%s", err, b.Bytes())
		}
		// The rendering states the defaults explicitly; records keep their order.
		if diff := cmp.Diff(zf.Records, back.Records); diff != "" {
			t.Fatalf("records changed in a round trip (-first +second):\n%s\nrendered:\n%s", diff, b.Bytes())
		}
		if zf.Zone.Serial != back.Zone.Serial || !cmp.Equal(zf.Zone.NS, back.Zone.NS) {
			t.Fatalf("zone %+v read back as %+v", zf.Zone, back.Zone)
		}
	})
}

// FuzzServerQuery feeds arbitrary packets to the server's decode and answer path.
// Property: no panic, and every answer packs into a message that unpacks, carries the
// query's id and is a response.
func FuzzServerQuery(f *testing.F) {
	for _, q := range []*mdns.Msg{
		question("n1.cluster.test.", mdns.TypeA),
		question("login.cluster.test.", mdns.TypeAAAA),
		question("11.0.97.10.in-addr.arpa.", mdns.TypePTR),
		question("cluster.test.", mdns.TypeANY),
		question("nosuch.cluster.test.", mdns.TypeMX),
		new(mdns.Msg).SetEdns0(4096, true),
	} {
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	tab := testTable(f)
	st := &state{records: tab, openRec: true, log: discard()}
	st.fwd = newForwarder(nil, 0, 0, 0, 0, nil, st.log)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		q, resp := st.decode(pkt, 0)
		if q != nil {
			q.from = netip.MustParseAddr("10.97.0.2")
			var fwd bool
			resp, fwd = st.answer(q)
			if fwd {
				t.Fatalf("forwarding without forwarders")
			}
		}
		if resp == nil {
			return
		}
		resp.Truncate(512)
		b, err := resp.Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, resp)
		}
		var back mdns.Msg
		if err := back.Unpack(b); err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		if !back.Response || len(pkt) >= 2 && back.Id != uint16(pkt[0])<<8|uint16(pkt[1]) {
			t.Fatalf("answer id %d response %v for a query with id %x", back.Id, back.Response, pkt[:2])
		}
	})
}

// FuzzFqdn: every name Fqdn accepts is canonical and accepted again unchanged.
func FuzzFqdn(f *testing.F) {
	for _, s := range []string{"n1.cluster.test", "N1.", "a..b", "_x._tcp.y", "-a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Fqdn(s)
		if err != nil {
			return
		}
		again, err := Fqdn(n)
		if err != nil || again != n {
			t.Fatalf("Fqdn(%q) = %q, then Fqdn of that = %q, %v", s, n, again, err)
		}
		if _, ok := mdns.IsDomainName(n); !ok {
			t.Fatalf("Fqdn(%q) = %q, not a domain name", s, n)
		}
	})
}
