package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// A Zone is a zone the server is authoritative for: the cluster's domain, or a reverse
// zone of one of its networks (ReverseZones).
type Zone struct {
	// Name is the zone's apex, e.g. "cluster.test." or "0.97.10.in-addr.arpa.". Written
	// without the final dot it is taken as fully qualified all the same.
	Name string
	// NS are the zone's name servers (fully qualified), the SOA's MNAME first. If empty,
	// "ns.<zone>" (answered only if a Host of that name exists).
	NS []string
	// Admin is the SOA's RNAME in mailbox form ("hostmaster.cluster.test."). If empty,
	// "hostmaster.<zone>".
	Admin string
	// Serial is the SOA serial. Secondaries and caches compare it: it must grow when the
	// records change (provd uses the store's generation).
	Serial uint32
	// TTL is the TTL of every record of the zone. If zero, DefaultTTL.
	TTL time.Duration
	// NegativeTTL is the SOA minimum: how long resolvers may cache "no such name"
	// (RFC 2308). If zero, DefaultNegativeTTL.
	NegativeTTL time.Duration
}

// Defaults of a Zone's TTLs. Records are short-lived on purpose: a node that is
// discovered or renamed should resolve within a minute everywhere.
const (
	DefaultTTL         = 60 * time.Second
	DefaultNegativeTTL = 10 * time.Second
)

func (z *Zone) ttl() uint32 {
	if z.TTL > 0 {
		return uint32(z.TTL / time.Second)
	}
	return uint32(DefaultTTL / time.Second)
}

func (z *Zone) negTTL() uint32 {
	if z.NegativeTTL > 0 {
		return uint32(z.NegativeTTL / time.Second)
	}
	return uint32(DefaultNegativeTTL / time.Second)
}

// ns returns the name servers, with the default.
func (z *Zone) ns() []string {
	if len(z.NS) > 0 {
		return z.NS
	}
	return []string{"ns." + z.Name}
}

func (z *Zone) admin() string {
	if z.Admin != "" {
		return z.Admin
	}
	return "hostmaster." + z.Name
}

// SOA returns the zone's SOA record.
func (z *Zone) SOA() *mdns.SOA {
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: z.Name, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: z.ttl()},
		Ns:      z.ns()[0],
		Mbox:    z.admin(),
		Serial:  z.Serial,
		Refresh: 3600,
		Retry:   900,
		Expire:  604800,
		Minttl:  z.negTTL(),
	}
}

// A Host is one name the server answers: its addresses and the aliases that point to it
// (CNAME records), as one /etc/hosts line that makehosts writes: the address, the
// canonical name, the other names.
type Host struct {
	// Name is the canonical name, fully qualified ("n1.cluster.test."). Its addresses
	// get PTR records pointing back to it in the reverse zones.
	Name string
	// Addrs are its addresses (A and AAAA records).
	Addrs []netip.Addr
	// Aliases are other fully qualified names of the host, answered as CNAME records to
	// Name.
	Aliases []string
}

// A Result is what the server knows of one name.
type Result struct {
	// Zone is the zone that holds the name, or nil when the server is not authoritative
	// for it: then, unless the name has records of its own, the query is forwarded.
	Zone *Zone
	// Exists reports whether the name exists: it has records, or names below it do (an
	// "empty non-terminal", answered with no data rather than NXDOMAIN).
	Exists bool
	// Addrs are the name's addresses, CNAME its canonical name if it is an alias, PTR
	// the names of a reverse-zone name.
	Addrs []netip.Addr
	CNAME string
	PTR   []string
}

// Records is what the server answers from. Lookup is called once per query (and once
// more for the target of a CNAME) and must be fast: Table is a ready in-memory one that
// answers with two map lookups.
type Records interface {
	// Lookup returns what is known of name, a lower-case fully qualified name ending in
	// ".". Forward names, aliases and reverse-zone names (PTR) alike.
	Lookup(name string) Result
}

// RecordsFunc adapts a function to Records.
type RecordsFunc func(name string) Result

// Lookup implements Records.
func (f RecordsFunc) Lookup(name string) Result { return f(name) }

// Table is an immutable set of zones and hosts, indexed for the server. Build a new one
// (NewTable) when the data changes and swap it in; a Table is safe for concurrent use.
type Table struct {
	zones    map[string]*Zone
	names    map[string]*entry
	zoneList []*Zone // in the order given
}

type entry struct {
	addrs []netip.Addr
	cname string
	ptr   []string
	// terminal is false for names that exist only because names below them do.
	terminal bool
}

var _ Records = (*Table)(nil)

// ErrBadName is wrapped by the errors about names that are not valid DNS names.
var ErrBadName = errors.New("not a valid DNS name")

// Fqdn checks name and returns it in canonical form: lower case, fully qualified. A
// name without the final dot is taken as fully qualified.
func Fqdn(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || n == "." {
		return "", fmt.Errorf("dns: name %q: %w: empty", name, ErrBadName)
	}
	n = mdns.Fqdn(n)
	if _, ok := mdns.IsDomainName(n); !ok || strings.Contains(n, "..") || strings.HasPrefix(n, ".") {
		return "", fmt.Errorf("dns: name %q: %w", name, ErrBadName)
	}
	for _, l := range mdns.SplitDomainName(n) {
		if len(l) > 63 {
			return "", fmt.Errorf("dns: name %q: %w: label %q is longer than 63 bytes", name, ErrBadName, l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("dns: name %q: %w: label %q begins or ends with '-'", name, ErrBadName, l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("dns: name %q: %w: want letters, digits, '-' and '_'", name, ErrBadName)
			}
		}
	}
	if len(n) > 254 {
		return "", fmt.Errorf("dns: name %q: %w: longer than 253 bytes", name, ErrBadName)
	}
	return n, nil
}

// NewTable indexes zones and hosts. Hosts whose name is not valid are an error; so are
// an alias that is also a host's canonical name, and two zones of the same name. A
// canonical name may lie outside every zone (an alias with a foreign domain in
// hosts.hostnames): it is answered all the same, as the only name of its kind. PTR
// records are made for every address whose reverse name lies in one of the zones; the
// first host to claim an address is its PTR target, the others follow in order.
func NewTable(zones []Zone, hosts []Host) (*Table, error) {
	t := &Table{zones: make(map[string]*Zone, len(zones)), names: make(map[string]*entry, 2*len(hosts))}
	for i := range zones {
		z := zones[i]
		n, err := Fqdn(z.Name)
		if err != nil {
			return nil, fmt.Errorf("dns: zone: %w", err)
		}
		z.Name = n
		for j, ns := range z.NS {
			if z.NS[j], err = Fqdn(ns); err != nil {
				return nil, fmt.Errorf("dns: zone %s: NS: %w", n, err)
			}
		}
		if z.NS != nil {
			z.NS = slices.Clone(z.NS)
		}
		if _, dup := t.zones[n]; dup {
			return nil, fmt.Errorf("dns: zone %s given twice", n)
		}
		t.zones[n] = &z
		t.zoneList = append(t.zoneList, &z)
	}
	get := func(n string) *entry {
		e := t.names[n]
		if e == nil {
			e = &entry{}
			t.names[n] = e
		}
		return e
	}
	for _, h := range hosts {
		n, err := Fqdn(h.Name)
		if err != nil {
			return nil, fmt.Errorf("dns: host: %w", err)
		}
		e := get(n)
		if e.cname != "" {
			return nil, fmt.Errorf("dns: host %s is also an alias of %s", n, e.cname)
		}
		e.terminal = true
		for _, a := range h.Addrs {
			a = a.Unmap()
			if !a.IsValid() {
				return nil, fmt.Errorf("dns: host %s: invalid address", n)
			}
			if !slices.Contains(e.addrs, a) {
				e.addrs = append(e.addrs, a)
			}
			rev := ReverseName(a)
			if t.zoneOf(rev) == nil {
				continue
			}
			r := get(rev)
			r.terminal = true
			if !slices.Contains(r.ptr, n) {
				r.ptr = append(r.ptr, n)
			}
		}
	}
	for _, h := range hosts {
		target, _ := Fqdn(h.Name)
		for _, al := range h.Aliases {
			n, err := Fqdn(al)
			if err != nil {
				return nil, fmt.Errorf("dns: host %s: alias: %w", target, err)
			}
			if n == target {
				continue
			}
			e := get(n)
			switch {
			case e.cname == target:
				continue
			case e.cname != "":
				return nil, fmt.Errorf("dns: alias %s of %s is already an alias of %s", n, target, e.cname)
			case e.terminal:
				return nil, fmt.Errorf("dns: alias %s of %s is also a host name", n, target)
			}
			e.cname = target
			e.terminal = true
		}
	}
	// Empty non-terminals: every ancestor of a name, up to its zone's apex, exists.
	for n, e := range t.names {
		if !e.terminal {
			continue
		}
		z := t.zoneOf(n)
		if z == nil {
			continue
		}
		for p := parent(n); p != "" && len(p) > len(z.Name); p = parent(p) {
			if _, ok := t.names[p]; ok {
				break
			}
			t.names[p] = &entry{}
		}
	}
	return t, nil
}

// Zones returns the table's zones in the order given.
func (t *Table) Zones() []Zone {
	out := make([]Zone, len(t.zoneList))
	for i, z := range t.zoneList {
		out[i] = *z
	}
	return out
}

// Len returns the number of names the table answers (hosts, aliases, PTR names).
func (t *Table) Len() int {
	n := 0
	for _, e := range t.names {
		if e.terminal {
			n++
		}
	}
	return n
}

// parent returns name without its first label ("" for a single label).
func parent(name string) string {
	i := strings.IndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return ""
	}
	return name[i+1:]
}

// zoneOf returns the deepest zone that holds name, or nil.
func (t *Table) zoneOf(name string) *Zone {
	for n := name; n != ""; n = parent(n) {
		if z := t.zones[n]; z != nil {
			return z
		}
	}
	return nil
}

// Lookup implements Records.
func (t *Table) Lookup(name string) Result {
	r := Result{Zone: t.zoneOf(name)}
	if z := r.Zone; z != nil && z.Name == name {
		r.Exists = true
	}
	if e := t.names[name]; e != nil {
		r.Exists = true
		r.Addrs, r.CNAME, r.PTR = e.addrs, e.cname, e.ptr
	}
	return r
}

// ReverseName returns the name of a's PTR record: "4.3.2.1.in-addr.arpa." for 1.2.3.4,
// nibbles under ip6.arpa. for IPv6.
func ReverseName(a netip.Addr) string {
	a = a.Unmap()
	var b strings.Builder
	if a.Is4() {
		v := a.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(v[i])))
			b.WriteByte('.')
		}
		b.WriteString("in-addr.arpa.")
		return b.String()
	}
	v := a.As16()
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[v[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[v[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}

// ReverseZones returns the names of the reverse zones that cover prefix p, on octet
// (IPv4) or nibble (IPv6) boundaries, as xCAT's makedns does: a /24 or longer is one
// zone of its /24 ("0.97.10.in-addr.arpa."), a /22 four /24 zones, a /16 one zone, a /12
// sixteen /16 zones. IPv6 prefixes must be a multiple of 4 bits long.
func ReverseZones(p netip.Prefix) ([]string, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("dns: reverse zones of %s: invalid prefix", p)
	}
	p = p.Masked()
	if p.Addr().Is4() {
		bits := p.Bits()
		// Round down to an octet: a /26 is served by its /24's zone, a /20 by 16 /24s.
		octets := (bits + 7) / 8
		if bits >= 24 {
			octets = 3
		}
		if octets == 0 {
			return nil, fmt.Errorf("dns: reverse zones of %s: a /0 is not a network", p)
		}
		n := 1
		if bits < 24 {
			n = 1 << (octets*8 - bits)
		}
		base := p.Addr().As4()
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		step := uint32(1) << (32 - octets*8)
		out := make([]string, 0, n)
		for i := 0; i < n; i++ {
			a := v + uint32(i)*step
			var b strings.Builder
			for k := octets - 1; k >= 0; k-- {
				b.WriteString(strconv.Itoa(int(a >> (24 - 8*k) & 0xff)))
				b.WriteByte('.')
			}
			b.WriteString("in-addr.arpa.")
			out = append(out, b.String())
		}
		return out, nil
	}
	if p.Bits()%4 != 0 || p.Bits() == 0 {
		return nil, fmt.Errorf("dns: reverse zones of %s: IPv6 prefixes must be a non-zero multiple of 4 bits", p)
	}
	full := ReverseName(p.Addr())
	// full has 32 nibbles: keep the last Bits/4 of them.
	labels := strings.Split(strings.TrimSuffix(full, "ip6.arpa."), ".")
	labels = labels[:32]
	keep := labels[32-p.Bits()/4:]
	return []string{strings.Join(keep, ".") + ".ip6.arpa."}, nil
}
