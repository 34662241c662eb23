package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/provkit/provkit/dns"
	"github.com/provkit/provkit/examples/internal/glue"
)

// newDNS makes the cluster's name server on addr (UDP and TCP): authoritative for the
// cluster's domain and the networks' reverse zones from the current view (a change in
// the tables is answered as soon as the view reloads), forwarding the rest to
// site.forwarders for the cluster's networks and loopback. site.forwarders is read once,
// at start.
func newDNS(addr string, vs *views, log *slog.Logger, m *metrics) (*dns.Server, error) {
	v := vs.Current()
	fwd, err := glue.Forwarders(v)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns: %w", err)
	}
	dlog := log.With("service", "dns")
	recs := &glue.DNSRecords{Views: vs, OnWarning: func(w string) { dlog.Warn("dns data", "warning", w) }}
	recs.Table() // build now: the first query is answered at once, and warnings show at start
	srv := &dns.Server{
		Records:       recs,
		Forwarders:    fwd,
		RecursionFrom: glue.RecursionNets(v),
		PacketConn:    pc,
		Listener:      ln,
		Logger:        dlog,
	}
	stat := func(f func(dns.Stats) uint64) func() float64 {
		return func() float64 { s, _ := srv.Stats(); return float64(f(s)) }
	}
	m.gauge("provd_dns_queries_total", stat(func(s dns.Stats) uint64 { return s.Queries }))
	m.gauge("provd_dns_authoritative_total", stat(func(s dns.Stats) uint64 { return s.Authoritative }))
	m.gauge("provd_dns_forwarded_total", stat(func(s dns.Stats) uint64 { return s.Forwarded }))
	m.gauge("provd_dns_cache_hits_total", stat(func(s dns.Stats) uint64 { return s.CacheHits }))
	m.gauge("provd_dns_failed_total", stat(func(s dns.Stats) uint64 { return s.Failed }))
	m.gauge("provd_dns_names", func() float64 { return float64(recs.Table().Len()) })
	log.Info("dns serving", "addr", pc.LocalAddr().String(), "forwarders", fmt.Sprint(fwd), "names", recs.Table().Len())
	return srv, nil
}
