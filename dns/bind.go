package dns

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/provkit/provkit/internal/natural"
)

// A Record is one resource record of a zone file, in master file terms.
type Record struct {
	Name  string // owner, fully qualified, lower case
	Type  string // "A", "AAAA", "CNAME", "PTR", ...
	TTL   uint32 // 0: the zone's ($TTL)
	Value string // the data in master file syntax: an address, a fully qualified target
}

// A ZoneFile is a zone as a BIND master file holds it: the SOA and apex NS (Zone) and
// the other records.
type ZoneFile struct {
	Zone    Zone
	Records []Record
}

// ZoneFiles returns the content of each of the table's zones, for BIND (makedns): the
// A, AAAA, CNAME and PTR records of the names inside the zone, sorted.
func (t *Table) ZoneFiles() []ZoneFile {
	out := make([]ZoneFile, 0, len(t.zoneList))
	byZone := map[*Zone][]Record{}
	for n, e := range t.names {
		z := t.zoneOf(n)
		if z == nil || !e.terminal {
			continue
		}
		rs := byZone[z]
		for _, a := range e.addrs {
			typ := "A"
			if a.Is6() {
				typ = "AAAA"
			}
			rs = append(rs, Record{Name: n, Type: typ, Value: a.String()})
		}
		if e.cname != "" {
			rs = append(rs, Record{Name: n, Type: "CNAME", Value: e.cname})
		}
		for _, p := range e.ptr {
			rs = append(rs, Record{Name: n, Type: "PTR", Value: p})
		}
		byZone[z] = rs
	}
	for _, z := range t.zoneList {
		rs := byZone[z]
		sortRecords(rs)
		out = append(out, ZoneFile{Zone: *z, Records: rs})
	}
	return out
}

func sortRecords(rs []Record) {
	slices.SortFunc(rs, func(a, b Record) int {
		return cmp.Or(compareNames(a.Name, b.Name), cmp.Compare(a.Type, b.Type), compareValues(a, b))
	})
}

// compareNames orders names the way people read zone files: by label from the right,
// numbers inside labels by value (n2 before n10, 9 before 10 in reverse zones).
func compareNames(a, b string) int {
	la, lb := mdns.SplitDomainName(a), mdns.SplitDomainName(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := natural.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(la), len(lb))
}

func compareValues(a, b Record) int {
	if a.Type == "A" || a.Type == "AAAA" {
		x, errx := netip.ParseAddr(a.Value)
		y, erry := netip.ParseAddr(b.Value)
		if errx == nil && erry == nil {
			return x.Compare(y)
		}
	}
	return strings.Compare(a.Value, b.Value)
}

// Names returns the owner names of zf's records.
func (zf *ZoneFile) Names() []string {
	var out []string
	for _, r := range zf.Records {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Update removes every record owned by one of the names in remove, then adds the
// records of add (makedns <noderange> and makedns -d), and sorts the result.
func (zf *ZoneFile) Update(remove []string, add []Record) {
	drop := make(map[string]bool, len(remove))
	for _, n := range remove {
		drop[strings.ToLower(mdns.Fqdn(n))] = true
	}
	zf.Records = slices.DeleteFunc(zf.Records, func(r Record) bool { return drop[r.Name] })
	for _, r := range add {
		if !slices.Contains(zf.Records, r) {
			zf.Records = append(zf.Records, r)
		}
	}
	sortRecords(zf.Records)
}

// NextSerial returns the serial that follows old: today's date as YYYYMMDD00 if that is
// larger (the convention people read), else old+1. Serials only ever grow.
func NextSerial(old uint32, now time.Time) uint32 {
	y, m, d := now.UTC().Date()
	base := uint32(y)*1000000 + uint32(m)*10000 + uint32(d)*100
	if old < base {
		return base
	}
	if old == ^uint32(0) {
		return old // cannot grow further without RFC 1982 wrap-around; leave it
	}
	return old + 1
}

// FileName is the name makedns gives a zone's file: "db.<zone>" (xCAT's and Debian's
// convention), e.g. db.cluster.test, db.0.97.10.in-addr.arpa.
func FileName(zone string) string {
	return "db." + strings.TrimSuffix(strings.ToLower(zone), ".")
}

// WriteTo renders zf as a BIND master file: $ORIGIN and $TTL, the SOA, the apex NS
// records, then the records with names relative to the origin.
func (zf *ZoneFile) WriteTo(w io.Writer) (int64, error) {
	z := &zf.Zone
	origin := strings.ToLower(mdns.Fqdn(z.Name))
	bw := &countWriter{w: bufio.NewWriter(w)}
	soa := z.SOA()
	fmt.Fprintf(bw, "; zone %s, written by provkit makedns (serial %d)\n", origin, z.Serial)
	fmt.Fprintf(bw, "$ORIGIN %s\n$TTL %d\n", origin, z.ttl())
	fmt.Fprintf(bw, "@\tIN\tSOA\t%s %s (\n\t\t%d\t; serial\n\t\t%d\t; refresh\n\t\t%d\t; retry\n\t\t%d\t; expire\n\t\t%d )\t; negative TTL\n",
		soa.Ns, soa.Mbox, soa.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minttl)
	for _, ns := range z.ns() {
		fmt.Fprintf(bw, "@\tIN\tNS\t%s\n", ns)
	}
	for _, r := range zf.Records {
		name := relative(r.Name, origin)
		if r.TTL != 0 {
			fmt.Fprintf(bw, "%s\t%d\tIN\t%s\t%s\n", name, r.TTL, r.Type, r.Value)
		} else {
			fmt.Fprintf(bw, "%s\tIN\t%s\t%s\n", name, r.Type, r.Value)
		}
	}
	err := bw.w.(*bufio.Writer).Flush()
	if err == nil {
		err = bw.err
	}
	return bw.n, err
}

func relative(name, origin string) string {
	switch {
	case name == origin:
		return "@"
	case strings.HasSuffix(name, "."+origin):
		return strings.TrimSuffix(name, "."+origin)
	}
	return name
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// maxZoneRecords bounds what ParseZoneFile reads, so a hostile file cannot exhaust
// memory.
const maxZoneRecords = 1 << 20

// ParseZoneFile reads a BIND master file of zone origin (as WriteTo writes it, or as a
// person edited it): the SOA gives the serial, name servers, mailbox and TTLs; the
// other records are kept as Records. $INCLUDE is refused. file names the input in errors.
func ParseZoneFile(r io.Reader, origin, file string) (ZoneFile, error) {
	o, err := Fqdn(origin)
	if err != nil {
		return ZoneFile{}, fmt.Errorf("dns: zone file %s: origin: %w", file, err)
	}
	zf := ZoneFile{Zone: Zone{Name: o}}
	zp := mdns.NewZoneParser(r, o, file)
	zp.SetIncludeAllowed(false)
	haveSOA := false
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if name != o && !strings.HasSuffix(name, "."+o) {
			return ZoneFile{}, fmt.Errorf("dns: zone file %s: record %s is outside zone %s", file, h.Name, o)
		}
		switch v := rr.(type) {
		case *mdns.SOA:
			if name != o {
				return ZoneFile{}, fmt.Errorf("dns: zone file %s: SOA of %s, want %s", file, h.Name, o)
			}
			if haveSOA {
				return ZoneFile{}, fmt.Errorf("dns: zone file %s: two SOA records", file)
			}
			haveSOA = true
			if _, err := Fqdn(v.Ns); err != nil {
				return ZoneFile{}, fmt.Errorf("dns: zone file %s: SOA name server: %w", file, err)
			}
			if _, ok := mdns.IsDomainName(v.Mbox); !ok || v.Mbox == "" || v.Mbox == "." {
				return ZoneFile{}, fmt.Errorf("dns: zone file %s: SOA mailbox %q is not a name", file, v.Mbox)
			}
			zf.Zone.Serial = v.Serial
			zf.Zone.Admin = strings.ToLower(v.Mbox)
			zf.Zone.TTL = time.Duration(h.Ttl) * time.Second
			zf.Zone.NegativeTTL = time.Duration(v.Minttl) * time.Second
			// The SOA's MNAME goes first among the name servers.
			zf.Zone.NS = append([]string{strings.ToLower(v.Ns)}, slices.DeleteFunc(zf.Zone.NS, func(s string) bool { return s == strings.ToLower(v.Ns) })...)
			continue
		case *mdns.NS:
			if name == o {
				ns, err := Fqdn(v.Ns)
				if err != nil {
					return ZoneFile{}, fmt.Errorf("dns: zone file %s: NS: %w", file, err)
				}
				if !slices.Contains(zf.Zone.NS, ns) {
					zf.Zone.NS = append(zf.Zone.NS, ns)
				}
				continue
			}
		}
		if len(zf.Records) >= maxZoneRecords {
			return ZoneFile{}, fmt.Errorf("dns: zone file %s: more than %d records", file, maxZoneRecords)
		}
		rec := recordOf(rr)
		// What we cannot write back as it was read (odd rdata the parser tolerates) is
		// refused now rather than corrupted later.
		if _, err := mdns.NewRR(rec.Name + " 1 IN " + rec.Type + " " + rec.Value); err != nil || rec.Value == "" {
			return ZoneFile{}, fmt.Errorf("dns: zone file %s: record %q cannot be written back", file, strings.TrimSpace(rr.String()))
		}
		zf.Records = append(zf.Records, rec)
	}
	if err := zp.Err(); err != nil {
		return ZoneFile{}, fmt.Errorf("dns: zone file %s: %w", file, err)
	}
	if !haveSOA {
		return ZoneFile{}, fmt.Errorf("dns: zone file %s: no SOA record for %s", file, o)
	}
	// Records with the zone's own TTL (the $TTL that WriteTo writes, which the SOA
	// carries) say so with 0.
	def := uint32(zf.Zone.TTL / time.Second)
	for i := range zf.Records {
		if zf.Records[i].TTL == def {
			zf.Records[i].TTL = 0
		}
	}
	return zf, nil
}

// recordOf turns a parsed record into a Record, its data in canonical master syntax.
func recordOf(rr mdns.RR) Record {
	h := rr.Header()
	data := strings.TrimPrefix(rr.String(), h.String())
	switch v := rr.(type) {
	case *mdns.CNAME:
		data = strings.ToLower(v.Target)
	case *mdns.PTR:
		data = strings.ToLower(v.Ptr)
	case *mdns.A:
		if a, ok := netip.AddrFromSlice(v.A); ok {
			data = a.Unmap().String()
		}
	case *mdns.AAAA:
		if a, ok := netip.AddrFromSlice(v.AAAA); ok {
			data = a.String()
		}
	}
	return Record{Name: strings.ToLower(h.Name), Type: mdns.TypeToString[h.Rrtype], TTL: h.Ttl, Value: data}
}

// NamedConf is what makedns writes for BIND besides the zone files.
type NamedConf struct {
	// Dir is where the zone files are (site.binddir for provkit).
	Dir string
	// Zones are the zones to declare, each served from Dir/FileName(zone).
	Zones []string
	// Forwarders are the upstream servers for other names (site.forwarders).
	Forwarders []netip.Addr
}

// WriteZones renders the zone statements, to be included at the top level of
// named.conf (`include "<dir>/named.conf.zones";`).
func (c *NamedConf) WriteZones(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "// zones of the cluster, written by provkit makedns: include this file in named.conf\n")
	for _, z := range c.Zones {
		z = strings.TrimSuffix(strings.ToLower(z), ".")
		fmt.Fprintf(bw, "zone %q {\n\ttype primary;\n\tfile %q;\n\tallow-update { none; };\n};\n", z, filepath.Join(c.Dir, FileName(z)))
	}
	return bw.Flush()
}

// WriteOptions renders the statements of the options block that makedns sets: the
// forwarders. Include it inside `options { ... };` of named.conf.
func (c *NamedConf) WriteOptions(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "// options of the cluster's name server, written by provkit makedns: include this file inside options { };\n")
	if len(c.Forwarders) > 0 {
		fmt.Fprintf(bw, "forwarders {")
		for _, f := range c.Forwarders {
			fmt.Fprintf(bw, " %s;", f)
		}
		fmt.Fprintf(bw, " };\nforward only;\n")
	}
	return bw.Flush()
}
