package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/provkit/provkit/internal/testenv"
)

// serve starts srv on a loopback UDP socket and a TCP listener of the same port, and
// returns that address. The server stops at the end of the test; Serve must return nil.
func serve(t *testing.T, srv *Server) string {
	t.Helper()
	// UDP and TCP on the same port: the UDP port is free, the TCP one may not be (another
	// test's connection), so try a few ports.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 20 {
				t.Fatal(err)
			}
		}
	}
	srv.PacketConn, srv.Listener = pc, ln
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v, want nil after a clean stop", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10 s of its context's end")
		}
	})
	// Serve has started once Stats answers.
	for i := 0; ; i++ {
		if _, err := srv.Stats(); err == nil {
			break
		}
		if i > 1000 {
			t.Fatal("server did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return pc.LocalAddr().String()
}

func exchange(t *testing.T, addr, netw string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: netw, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s %s: %v", netw, m.Question[0].Name, mdns.TypeToString[m.Question[0].Qtype], err)
	}
	if r.Id != m.Id {
		t.Fatalf("answer id %d, want %d", r.Id, m.Id)
	}
	return r
}

func question(name string, t uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, t)
	return m
}

// rrs renders records without TTLs, for comparison.
func rrs(sec []mdns.RR) []string {
	var out []string
	for _, rr := range sec {
		h := *rr.Header()
		s := rr.String()
		h.Ttl = 0
		out = append(out, strings.Replace(s, rr.Header().String(), h.String(), 1))
	}
	return out
}

func TestServerAuthoritative(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	addr := serve(t, &Server{Records: testTable(t)})
	soa := "cluster.test.\t0\tIN\tSOA\tns.cluster.test. hostmaster.cluster.test. 7 3600 900 604800 10"
	for _, tc := range []struct {
		name, qname string
		qtype       uint16
		rcode       int
		answer, ns  []string
	}{
		{"A", "n1.cluster.test.", mdns.TypeA, 0, []string{"n1.cluster.test.\t0\tIN\tA\t10.97.0.11"}, nil},
		{"case kept", "N1.Cluster.TEST.", mdns.TypeA, 0, []string{"N1.Cluster.TEST.\t0\tIN\tA\t10.97.0.11"}, nil},
		{"AAAA", "n2.cluster.test.", mdns.TypeAAAA, 0, []string{"n2.cluster.test.\t0\tIN\tAAAA\t2001:db8::12"}, nil},
		{"alias", "login.cluster.test.", mdns.TypeA, 0, []string{"login.cluster.test.\t0\tIN\tCNAME\tn1.cluster.test.", "n1.cluster.test.\t0\tIN\tA\t10.97.0.11"}, nil},
		{"alias AAAA nodata", "login.cluster.test.", mdns.TypeAAAA, 0, []string{"login.cluster.test.\t0\tIN\tCNAME\tn1.cluster.test."}, []string{soa}},
		{"alias CNAME", "login.cluster.test.", mdns.TypeCNAME, 0, []string{"login.cluster.test.\t0\tIN\tCNAME\tn1.cluster.test."}, nil},
		{"foreign alias", "n1.other.example.", mdns.TypeA, 0, []string{"n1.other.example.\t0\tIN\tCNAME\tn1.cluster.test.", "n1.cluster.test.\t0\tIN\tA\t10.97.0.11"}, nil},
		{"PTR", "11.0.97.10.in-addr.arpa.", mdns.TypePTR, 0, []string{"11.0.97.10.in-addr.arpa.\t0\tIN\tPTR\tn1.cluster.test."}, nil},
		{"no such name", "n9.cluster.test.", mdns.TypeA, mdns.RcodeNameError, nil, []string{soa}},
		{"no such type", "n1.cluster.test.", mdns.TypeMX, 0, nil, []string{soa}},
		{"empty non-terminal", "rack1.cluster.test.", mdns.TypeA, 0, nil, []string{soa}},
		{"SOA", "cluster.test.", mdns.TypeSOA, 0, []string{soa}, nil},
		{"NS", "cluster.test.", mdns.TypeNS, 0, []string{"cluster.test.\t0\tIN\tNS\tns.cluster.test."}, nil},
		{"ANY", "n2.cluster.test.", mdns.TypeANY, 0, []string{"n2.cluster.test.\t0\tIN\tA\t10.97.0.12", "n2.cluster.test.\t0\tIN\tAAAA\t2001:db8::12"}, nil},
		{"reverse no such name", "99.0.97.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeNameError, nil,
			[]string{"0.97.10.in-addr.arpa.\t0\tIN\tSOA\tns.cluster.test. hostmaster.0.97.10.in-addr.arpa. 0 3600 900 604800 10"}},
		{"not ours, no forwarders", "example.com.", mdns.TypeA, mdns.RcodeRefused, nil, nil},
		{"zone transfer", "cluster.test.", mdns.TypeAXFR, mdns.RcodeRefused, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, netw := range []string{"udp", "tcp"} {
				r := exchange(t, addr, netw, question(tc.qname, tc.qtype))
				if r.Rcode != tc.rcode {
					t.Errorf("%s: rcode %s, want %s", netw, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
				}
				if diff := cmp.Diff(tc.answer, rrs(r.Answer)); diff != "" {
					t.Errorf("%s: answer (-want +got):\n%s", netw, diff)
				}
				if diff := cmp.Diff(tc.ns, rrs(r.Ns)); diff != "" {
					t.Errorf("%s: authority (-want +got):\n%s", netw, diff)
				}
				if wantAA := tc.rcode != mdns.RcodeRefused; r.Authoritative != wantAA {
					t.Errorf("%s: AA = %v, want %v", netw, r.Authoritative, wantAA)
				}
			}
		})
	}
}

func TestServerBadQueries(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	srv := &Server{Records: testTable(t)}
	addr := serve(t, srv)

	chaos := question("version.bind.", mdns.TypeTXT)
	chaos.Question[0].Qclass = mdns.ClassCHAOS
	if r := exchange(t, addr, "udp", chaos); r.Rcode != mdns.RcodeRefused {
		t.Errorf("CHAOS query: rcode %s, want REFUSED", mdns.RcodeToString[r.Rcode])
	}
	notify := question("cluster.test.", mdns.TypeSOA)
	notify.Opcode = mdns.OpcodeNotify
	if r := exchange(t, addr, "udp", notify); r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("NOTIFY: rcode %s, want NOTIMP", mdns.RcodeToString[r.Rcode])
	}
	v1 := question("n1.cluster.test.", mdns.TypeA)
	v1.SetEdns0(1232, false)
	v1.IsEdns0().SetVersion(1)
	if r := exchange(t, addr, "udp", v1); r.Rcode != mdns.RcodeBadVers {
		t.Errorf("EDNS version 1: rcode %s, want BADVERS", mdns.RcodeToString[r.Rcode])
	}
	two := question("n1.cluster.test.", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if r := exchange(t, addr, "udp", two); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: rcode %s, want FORMERR", mdns.RcodeToString[r.Rcode])
	}

	// Garbage is dropped or answered FORMERR; the server keeps serving.
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, pkt := range [][]byte{{1, 2, 3}, {0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a'}, make([]byte, 600)} {
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	// Workers answer in any order: the zero packet gets FORMERR (no question), the
	// truncated question FORMERR with its id.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	got := map[uint16]int{}
	for range 2 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("FORMERR answers: %v", err)
		}
		var r mdns.Msg
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		got[r.Id] = r.Rcode
	}
	if diff := cmp.Diff(map[uint16]int{0: mdns.RcodeFormatError, 7: mdns.RcodeFormatError}, got); diff != "" {
		t.Errorf("answers to garbage by id (-want +got):\n%s", diff)
	}
	if r := exchange(t, addr, "udp", question("n1.cluster.test.", mdns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("after garbage: %v", r)
	}
	st, _ := srv.Stats()
	if st.Malformed < 3 {
		t.Errorf("Stats().Malformed = %d, want at least 3", st.Malformed)
	}
}

func TestServerTruncation(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	var many []netip.Addr
	for i := 1; i <= 100; i++ {
		many = append(many, netip.AddrFrom4([4]byte{10, 97, 2, byte(i)}))
	}
	tab, err := NewTable([]Zone{{Name: "cluster.test."}}, []Host{{Name: "big.cluster.test.", Addrs: many}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, &Server{Records: tab})
	r := exchange(t, addr, "udp", question("big.cluster.test.", mdns.TypeA))
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Errorf("UDP without EDNS: TC=%v with %d answers, want TC and fewer than 100", r.Truncated, len(r.Answer))
	}
	e := question("big.cluster.test.", mdns.TypeA)
	e.SetEdns0(4096, false)
	r = exchange(t, addr, "udp", e)
	if !r.Truncated || r.IsEdns0() == nil {
		t.Errorf("UDP with EDNS 4096 (capped at %d): TC=%v OPT=%v, want TC and an OPT", ednsSize, r.Truncated, r.IsEdns0())
	}
	r.Compress = true // as it came on the wire
	if r.Len() > ednsSize {
		t.Errorf("UDP answer of %d bytes, want at most %d", r.Len(), ednsSize)
	}
	r = exchange(t, addr, "tcp", question("big.cluster.test.", mdns.TypeA))
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: TC=%v with %d answers, want all 100", r.Truncated, len(r.Answer))
	}
}

// upstream is a name server standing in for site.forwarders: our own server,
// authoritative for example.com, whose lookups can be held back and are counted.
type upstream struct {
	addr  string
	asked atomic.Int64
	mu    sync.Mutex
	gate  chan struct{} // if not nil, lookups wait for it to close
}

func (u *upstream) hold() chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.gate = make(chan struct{})
	return u.gate
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	tab, err := NewTable([]Zone{{Name: "example.com.", TTL: 300 * time.Second, NegativeTTL: 120 * time.Second}},
		[]Host{{Name: "www.example.com.", Addrs: addrs("192.0.2.1")}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Records: RecordsFunc(func(name string) Result {
		u.asked.Add(1)
		u.mu.Lock()
		g := u.gate
		u.mu.Unlock()
		if g != nil {
			<-g
		}
		return tab.Lookup(name)
	})}
	u.addr = serve(t, srv)
	return u
}

func TestServerForwardAndCache(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	up := startUpstream(t)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	srv := &Server{Records: testTable(t), Forwarders: []netip.AddrPort{netip.MustParseAddrPort(up.addr)}, now: clock.now}
	addr := serve(t, srv)

	r := exchange(t, addr, "udp", question("www.example.com.", mdns.TypeA))
	if diff := cmp.Diff([]string{"www.example.com.\t0\tIN\tA\t192.0.2.1"}, rrs(r.Answer)); diff != "" || r.Authoritative || !r.RecursionAvailable {
		t.Fatalf("forwarded answer AA=%v RA=%v (-want +got):\n%s", r.Authoritative, r.RecursionAvailable, diff)
	}
	if ttl := r.Answer[0].Header().Ttl; ttl != 300 {
		t.Errorf("first answer TTL %d, want 300", ttl)
	}
	clock.advance(100 * time.Second)
	r = exchange(t, addr, "tcp", question("WWW.example.com.", mdns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 200 || r.Question[0].Name != "WWW.example.com." {
		t.Errorf("cached answer = %v, want TTL 200 and the question as asked", r)
	}
	if n := up.asked.Load(); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (the second answer comes from the cache)", n)
	}
	// Negative answers are cached for the SOA's negative TTL.
	for range 2 {
		r = exchange(t, addr, "udp", question("nx.example.com.", mdns.TypeA))
		if r.Rcode != mdns.RcodeNameError || len(r.Ns) != 1 {
			t.Errorf("forwarded NXDOMAIN = %v", r)
		}
	}
	if n := up.asked.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2", n)
	}
	// After the TTL the cache asks again.
	clock.advance(201 * time.Second)
	exchange(t, addr, "udp", question("www.example.com.", mdns.TypeA))
	if n := up.asked.Load(); n != 3 {
		t.Errorf("upstream asked %d times after the TTL ran out, want 3", n)
	}
	// The cluster's own names never go upstream.
	exchange(t, addr, "udp", question("n1.cluster.test.", mdns.TypeA))
	if n := up.asked.Load(); n != 3 {
		t.Errorf("upstream asked %d times, want 3", n)
	}
	st, _ := srv.Stats()
	if st.Forwarded != 3 || st.CacheHits != 2 {
		t.Errorf("Stats() = %+v, want 3 forwarded and 2 cache hits", st)
	}
	if err := srv.FlushCache(); err != nil {
		t.Fatal(err)
	}
	exchange(t, addr, "udp", question("www.example.com.", mdns.TypeA))
	if n := up.asked.Load(); n != 4 {
		t.Errorf("upstream asked %d times after FlushCache, want 4", n)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestServerForwardOnce(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	up := startUpstream(t)
	gate := up.hold()
	addr := serve(t, &Server{Forwarders: []netip.AddrPort{netip.MustParseAddrPort(up.addr)}})
	const clients = 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &mdns.Client{Timeout: 10 * time.Second}
			r, _, err := c.Exchange(question("www.example.com.", mdns.TypeA), addr)
			if err == nil && len(r.Answer) != 1 {
				err = fmt.Errorf("answer %v", r)
			}
			errs <- err
		}()
	}
	// Wait until the upstream holds the query, give the other clients time to ask, then
	// let it answer.
	for up.asked.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := up.asked.Load(); n != 1 {
		t.Errorf("upstream asked %d times for %d identical queries in flight, want 1", n, clients)
	}
}

func TestServerForwardFailure(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	// A forwarder that never answers, then one that refuses: SERVFAIL, not a hang.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	refusing := serve(t, &Server{}) // no records, no forwarders: REFUSED
	srv := &Server{
		Forwarders:     []netip.AddrPort{netip.MustParseAddrPort(silent.LocalAddr().String()), netip.MustParseAddrPort(refusing)},
		ForwardTimeout: 200 * time.Millisecond,
	}
	addr := serve(t, srv)
	r := exchange(t, addr, "udp", question("www.example.com.", mdns.TypeA))
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if st, _ := srv.Stats(); st.Failed != 1 {
		t.Errorf("Stats().Failed = %d, want 1", st.Failed)
	}
}

func TestServerRecursionFrom(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	up := startUpstream(t)
	addr := serve(t, &Server{
		Records:       testTable(t),
		Forwarders:    []netip.AddrPort{netip.MustParseAddrPort(up.addr)},
		RecursionFrom: []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16")},
	})
	r := exchange(t, addr, "udp", question("www.example.com.", mdns.TypeA))
	if r.Rcode != mdns.RcodeRefused || r.RecursionAvailable {
		t.Errorf("recursion for 127.0.0.1, not allowed: rcode %s RA %v, want REFUSED without RA", mdns.RcodeToString[r.Rcode], r.RecursionAvailable)
	}
	if r := exchange(t, addr, "udp", question("n1.cluster.test.", mdns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("the cluster's names are answered to everybody: %v", r)
	}
	if up.asked.Load() != 0 {
		t.Errorf("upstream asked")
	}
}

// TestServerLive swaps the records under a running server: the next query sees them.
func TestServerLive(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	var cur atomic.Pointer[Table]
	cur.Store(testTable(t))
	addr := serve(t, &Server{Records: RecordsFunc(func(n string) Result { return cur.Load().Lookup(n) })})
	if r := exchange(t, addr, "udp", question("n3.cluster.test.", mdns.TypeA)); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("n3 before: %v", r)
	}
	tab, err := NewTable([]Zone{{Name: "cluster.test."}}, []Host{{Name: "n3.cluster.test.", Addrs: addrs("10.97.0.13")}})
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(tab)
	r := exchange(t, addr, "udp", question("n3.cluster.test.", mdns.TypeA))
	if diff := cmp.Diff([]string{"n3.cluster.test.\t0\tIN\tA\t10.97.0.13"}, rrs(r.Answer)); diff != "" {
		t.Errorf("n3 after the swap (-want +got):\n%s", diff)
	}
}

// TestServerGoResolver asks through Go's own resolver, as programs on the nodes do.
func TestServerGoResolver(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	up := startUpstream(t)
	addr := serve(t, &Server{Records: testTable(t), Forwarders: []netip.AddrPort{netip.MustParseAddrPort(up.addr)}})
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := res.LookupHost(ctx, "n2.cluster.test")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"10.97.0.12", "2001:db8::12"}) {
		t.Errorf("LookupHost(n2.cluster.test) = %v, %v", got, err)
	}
	if got, err := res.LookupHost(ctx, "login.cluster.test"); err != nil || !slices.Equal(got, []string{"10.97.0.11"}) {
		t.Errorf("LookupHost(login.cluster.test) = %v, %v", got, err)
	}
	if got, err := res.LookupCNAME(ctx, "login.cluster.test"); err != nil || got != "n1.cluster.test." {
		t.Errorf("LookupCNAME(login.cluster.test) = %q, %v", got, err)
	}
	if got, err := res.LookupAddr(ctx, "10.97.0.11"); err != nil || !slices.Equal(got, []string{"n1.cluster.test."}) {
		t.Errorf("LookupAddr(10.97.0.11) = %v, %v", got, err)
	}
	var dnsErr *net.DNSError
	if _, err := res.LookupHost(ctx, "n9.cluster.test"); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("LookupHost(n9.cluster.test) = %v, want not found", err)
	}
	if got, err := res.LookupHost(ctx, "www.example.com"); err != nil || !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("LookupHost(www.example.com) through the forwarder = %v, %v", got, err)
	}
}

func TestServeOpensAddr(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	srv := &Server{Addr: "127.0.0.1:0", Records: testTable(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	for {
		if _, err := srv.Stats(); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if _, err := srv.Stats(); !errors.Is(err, ErrNotServing) {
		t.Errorf("Stats after Serve = %v, want ErrNotServing", err)
	}
	bad := &Server{Forwarders: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}}
	if err := bad.Serve(context.Background()); err == nil {
		t.Errorf("Serve with a forwarder on port 0 = nil, want an error")
	}
}
