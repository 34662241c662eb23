package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// forwarder sends the queries for names outside the server's zones to the upstream
// servers, one upstream query per distinct question at a time (the clients that ask the
// same while it is in flight wait for the same answer), and caches the answers for their
// TTL.
type forwarder struct {
	servers []netip.AddrPort
	sem     chan struct{}
	timeout time.Duration
	cache   *cache
	now     func() time.Time
	log     *slog.Logger

	mu       sync.Mutex
	inflight map[cacheKey]*call
	wg       sync.WaitGroup

	forwarded, hits, failed atomic.Uint64
}

// cacheKey identifies a question: what is asked, and the flags that change the answer.
type cacheKey struct {
	name          string // lower case
	qtype, qclass uint16
	do, cd        bool
}

type call struct{ waiters []waiter }

type waiter struct {
	q    *query
	done func(*mdns.Msg)
}

// maxWaiters bounds the clients waiting for one upstream answer.
const maxWaiters = 1024

func newForwarder(servers []netip.AddrPort, maxInFlight int, timeout time.Duration, cacheSize int, maxTTL time.Duration, now func() time.Time, log *slog.Logger) *forwarder {
	if maxInFlight <= 0 {
		maxInFlight = 256
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if cacheSize == 0 {
		cacheSize = 10000
	}
	if maxTTL <= 0 {
		maxTTL = time.Hour
	}
	return &forwarder{
		servers:  servers,
		sem:      make(chan struct{}, maxInFlight),
		timeout:  timeout,
		cache:    &cache{max: cacheSize, maxTTL: maxTTL, m: map[cacheKey]*centry{}},
		now:      now,
		log:      log,
		inflight: map[cacheKey]*call{},
	}
}

func (f *forwarder) enabled() bool { return len(f.servers) > 0 }

// wait waits for the upstream queries in flight (they end with their context).
func (f *forwarder) wait() { f.wg.Wait() }

func keyOf(q *query) cacheKey {
	qq := q.msg.Question[0]
	return cacheKey{name: strings.ToLower(qq.Name), qtype: qq.Qtype, qclass: qq.Qclass, do: q.do, cd: q.msg.CheckingDisabled}
}

// resolve answers q from the cache or upstream and calls done with the answer: at once
// on a cache hit, else on another goroutine when the upstream answer (or failure) comes.
func (f *forwarder) resolve(ctx context.Context, q *query, done func(*mdns.Msg)) {
	key := keyOf(q)
	if m, age, ok := f.cache.get(key, f.now()); ok {
		f.hits.Add(1)
		done(reply(q, m, age))
		return
	}
	f.mu.Lock()
	if c := f.inflight[key]; c != nil {
		if len(c.waiters) < maxWaiters {
			c.waiters = append(c.waiters, waiter{q, done})
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		f.failed.Add(1)
		done(servfail(q))
		return
	}
	select {
	case f.sem <- struct{}{}:
	default:
		f.mu.Unlock()
		f.failed.Add(1)
		done(servfail(q))
		return
	}
	c := &call{waiters: []waiter{{q, done}}}
	f.inflight[key] = c
	f.mu.Unlock()
	f.forwarded.Add(1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		resp, err := f.exchange(ctx, q)
		<-f.sem
		if err == nil {
			f.cache.put(key, resp, f.now())
		} else if ctx.Err() == nil {
			f.log.Warn("dns: forward", "name", q.msg.Question[0].Name, "type", mdns.TypeToString[q.msg.Question[0].Qtype], "err", err)
		}
		f.mu.Lock()
		delete(f.inflight, key)
		ws := c.waiters
		f.mu.Unlock()
		for _, w := range ws {
			if err != nil {
				f.failed.Add(1)
				w.done(servfail(w.q))
			} else {
				w.done(reply(w.q, resp, 0))
			}
		}
	}()
}

// errUpstream is wrapped when no forwarder gave a usable answer.
var errUpstream = errors.New("no usable answer from the forwarders")

// exchange asks the forwarders in order and returns the first usable answer (not
// SERVFAIL, not REFUSED), retrying over TCP when it comes back truncated.
func (f *forwarder) exchange(ctx context.Context, q *query) (*mdns.Msg, error) {
	qq := q.msg.Question[0]
	m := new(mdns.Msg)
	m.SetQuestion(qq.Name, qq.Qtype)
	m.Question[0].Qclass = qq.Qclass
	m.RecursionDesired = true
	m.CheckingDisabled = q.msg.CheckingDisabled
	m.SetEdns0(ednsSize, q.do)
	var last error
	for _, srv := range f.servers {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for _, netw := range []string{"udp", "tcp"} {
			cl := &mdns.Client{Net: netw, Timeout: f.timeout, UDPSize: ednsSize}
			resp, _, err := cl.ExchangeContext(ctx, m, srv.String())
			if err != nil {
				last = fmt.Errorf("%s %s: %w", netw, srv, err)
				break
			}
			if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, qq.Name) || resp.Question[0].Qtype != qq.Qtype {
				last = fmt.Errorf("%s %s: the answer is for another question", netw, srv)
				break
			}
			if resp.Truncated && netw == "udp" {
				continue
			}
			if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
				last = fmt.Errorf("%s %s: %s", netw, srv, mdns.RcodeToString[resp.Rcode])
				break
			}
			stripOPT(resp)
			return resp, nil
		}
	}
	if last == nil {
		last = errors.New("no forwarders")
	}
	return nil, fmt.Errorf("%w: %w", errUpstream, last)
}

func stripOPT(m *mdns.Msg) {
	out := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != mdns.TypeOPT {
			out = append(out, rr)
		}
	}
	m.Extra = out
}

// reply makes the answer to q out of an upstream answer that is age old.
func reply(q *query, up *mdns.Msg, age time.Duration) *mdns.Msg {
	r := up.CopyTo(new(mdns.Msg))
	r.Id = q.msg.Id
	r.Question = q.msg.Question
	r.Response = true
	r.Authoritative = false
	r.RecursionDesired = q.msg.RecursionDesired
	r.RecursionAvailable = true
	r.Compress = true
	if age > 0 {
		d := uint32(age / time.Second)
		for _, sec := range [][]mdns.RR{r.Answer, r.Ns, r.Extra} {
			for _, rr := range sec {
				h := rr.Header()
				if h.Ttl > d {
					h.Ttl -= d
				} else {
					h.Ttl = 0
				}
			}
		}
	}
	return withEDNS(r, q)
}

func servfail(q *query) *mdns.Msg {
	r := new(mdns.Msg)
	r.SetRcode(q.msg, mdns.RcodeServerFailure)
	r.RecursionAvailable = true
	return withEDNS(r, q)
}

// cache holds upstream answers until their TTL runs out. When full, it drops an expired
// entry if it meets one, else an arbitrary one (Go's map order is random).
type cache struct {
	mu     sync.Mutex
	max    int // < 0: disabled
	maxTTL time.Duration
	m      map[cacheKey]*centry
}

type centry struct {
	msg     *mdns.Msg
	stored  time.Time
	expires time.Time
}

func (c *cache) get(k cacheKey, now time.Time) (*mdns.Msg, time.Duration, bool) {
	if c.max < 0 {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		return nil, 0, false
	}
	if !now.Before(e.expires) {
		delete(c.m, k)
		return nil, 0, false
	}
	return e.msg, now.Sub(e.stored), true
}

func (c *cache) put(k cacheKey, m *mdns.Msg, now time.Time) {
	if c.max < 0 {
		return
	}
	ttl := cacheTTL(m)
	if ttl <= 0 {
		return
	}
	ttl = min(ttl, c.maxTTL)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		n := 0
		for kk, e := range c.m {
			if !now.Before(e.expires) || n >= 8 {
				delete(c.m, kk)
				break
			}
			n++
		}
	}
	c.m[k] = &centry{msg: m, stored: now, expires: now.Add(ttl)}
}

func (c *cache) flush() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// cacheTTL is how long m may be cached: the smallest TTL of its records, or for a
// negative answer the SOA's (RFC 2308). Answers that are neither are not cached.
func cacheTTL(m *mdns.Msg) time.Duration {
	switch m.Rcode {
	case mdns.RcodeSuccess, mdns.RcodeNameError:
	default:
		return 0
	}
	if m.Rcode == mdns.RcodeSuccess && len(m.Answer) > 0 {
		ttl := ^uint32(0)
		for _, sec := range [][]mdns.RR{m.Answer, m.Ns} {
			for _, rr := range sec {
				ttl = min(ttl, rr.Header().Ttl)
			}
		}
		return time.Duration(ttl) * time.Second
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}
