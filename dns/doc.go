// Package dns is provkit's embedded cluster name server, and the BIND files of makedns
// for sites that keep BIND.
//
// Server answers over UDP and TCP with the codec of github.com/miekg/dns and its own
// bounded serve loop:
//
//   - authoritatively for the names its Records hold: the cluster's domain (node names,
//     their FQDNs, aliases as CNAMEs, other interfaces) and the reverse (PTR) zones of
//     the cluster's networks, with SOA and NS at each zone apex, NXDOMAIN and NODATA
//     answers carrying the SOA (RFC 2308), empty non-terminals, EDNS(0) and truncation;
//   - for every other name, as a caching forwarder to the upstream servers
//     (site.forwarders): one upstream query per distinct question in flight, answers
//     cached for their TTL (negative answers for the SOA's), a bound on the queries in
//     flight, and recursion only for the client networks allowed.
//
// Records is consulted on every query, so a change in the data is answered at once:
// Table is a ready, immutable in-memory implementation to rebuild and swap in when the
// data changes (examples/provd builds one from the cluster tables whenever they change).
//
// For BIND, Table.ZoneFiles gives each zone's records, ZoneFile.WriteTo renders a master
// file, ParseZoneFile reads one back (to add or remove nodes, with NextSerial keeping the
// serial growing), and NamedConf renders the named.conf snippets.
//
// ARCHITECTURE.md has no row for this package: it follows the rule of the service
// packages (dhcp, tftp, nfsroot): it imports nothing of provkit, declares what it needs
// as a small interface (Records) and plain structs (Zone, Host), and examples/provd
// adapts the cluster store to it.
//
// Usage:
//
//	table, err := dns.NewTable(
//		[]dns.Zone{{Name: "cluster.test."}, {Name: "0.97.10.in-addr.arpa."}},
//		[]dns.Host{{Name: "n1.cluster.test.", Addrs: []netip.Addr{netip.MustParseAddr("10.97.0.11")},
//			Aliases: []string{"login.cluster.test."}}})
//	if err != nil {
//		return err
//	}
//	srv := &dns.Server{
//		Records:       table,
//		Forwarders:    []netip.AddrPort{netip.MustParseAddrPort("10.0.0.53:53")},
//		RecursionFrom: []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16"), netip.MustParsePrefix("127.0.0.0/8")},
//		Addr:          "10.97.0.1:53",
//		Logger:        slog.Default(),
//	}
//	err = srv.Serve(ctx) // until ctx is done; nil on a clean stop
package dns
