package dhcp

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// LeaseState is the state of a Lease.
type LeaseState uint8

const (
	// LeaseOffered: an address offered and not yet requested. Offers live in memory only.
	LeaseOffered LeaseState = iota + 1
	// LeaseBound: acknowledged; persisted before the ACK was sent.
	LeaseBound
	// LeaseDeclined: a client reported the address in use (DHCPDECLINE); nobody gets it
	// until Expires.
	LeaseDeclined
)

func (s LeaseState) String() string {
	switch s {
	case LeaseOffered:
		return "offered"
	case LeaseBound:
		return "bound"
	case LeaseDeclined:
		return "declined"
	}
	return "unknown"
}

// A Lease is a snapshot of one address the server has handed out.
type Lease struct {
	IP netip.Addr
	// MAC is the client's hardware address (empty for a client known by ClientID only,
	// and for a declined address).
	MAC net.HardwareAddr
	// HWType is the hardware type of MAC (1 for Ethernet).
	HWType uint8
	// ClientID is option 61 as the client last sent it.
	ClientID []byte
	// Hostname is option 12 as the client last sent it.
	Hostname string
	Expires  time.Time
	State    LeaseState
}

// A client key identifies one client: "one lease per MAC". It is 'h', htype, chaddr for a
// client with a hardware address, 'i', client-id for a client without one.
func hwKey(htype uint8, chaddr []byte) string {
	var b [18]byte
	b[0], b[1] = 'h', htype
	n := copy(b[2:], chaddr)
	return string(b[:2+n])
}

func idKey(id []byte) string { return "i" + string(id) }

type lease struct {
	ip       uint32
	key      string // "" for a declined address
	state    LeaseState
	expires  int64 // unix seconds: end of the binding, offer or quarantine
	clientID string
	hostname string
}

func (l *lease) live(now int64) bool { return l.expires > now }

// leaseTable holds every lease in memory, indexed by client and by address, and writes
// every binding change to the journal before the caller answers the client.
type leaseTable struct {
	mu    sync.Mutex
	byKey map[string]*lease
	byIP  map[uint32]*lease
	j     *journal // nil: memory only
	// retention is how long an expired binding is remembered so a returning client gets
	// its old address back.
	retention int64
}

func newLeaseTable() *leaseTable {
	return &leaseTable{
		byKey:     make(map[string]*lease),
		byIP:      make(map[uint32]*lease),
		retention: int64(time.Hour / time.Second),
	}
}

// free reports whether ip may be given to key at now.
func (t *leaseTable) freeFor(ip uint32, key string, now int64) bool {
	l := t.byIP[ip]
	return l == nil || l.key == key || !l.live(now)
}

// holder returns the live lease on ip held by a client other than key, or nil.
func (t *leaseTable) otherHolder(ip uint32, key string, now int64) *lease {
	l := t.byIP[ip]
	if l == nil || l.key == key || !l.live(now) {
		return nil
	}
	return l
}

// place moves key's lease to ip, evicting whatever stale lease held ip, and returns it.
// It does not touch the journal.
func (t *leaseTable) place(key string, ip uint32) *lease {
	if old := t.byIP[ip]; old != nil && old.key != key {
		delete(t.byIP, ip)
		if old.key != "" && t.byKey[old.key] == old {
			delete(t.byKey, old.key)
		}
	}
	l := t.byKey[key]
	if l != nil && l.ip != ip {
		if t.byIP[l.ip] == l {
			delete(t.byIP, l.ip)
		}
		l.ip = ip
		l.state = 0
	}
	if l == nil {
		l = &lease{ip: ip, key: key}
		t.byKey[key] = l
	}
	t.byIP[ip] = l
	return l
}

// offer records an offer of ip to key until offerUntil, unless key already holds a binding
// on ip, which stays as it is.
func (t *leaseTable) offer(key string, ip uint32, now, offerUntil int64) {
	if l := t.byKey[key]; l != nil && l.ip == ip && l.state == LeaseBound && l.live(now) {
		return
	}
	l := t.place(key, ip)
	l.state = LeaseOffered
	l.expires = offerUntil
}

// bind records a binding of ip to key and queues its journal record, whose number it
// returns: the caller waits for that record to be written before it acknowledges.
func (t *leaseTable) bind(key string, ip uint32, expires int64, clientID, hostname []byte) uint64 {
	rec := record{op: opBind, key: key, ip: ip, expires: expires}
	l := t.byKey[key]
	// Reuse the stored strings when they did not change: no allocation on renewals.
	if l != nil && l.clientID == string(clientID) {
		rec.clientID = l.clientID
	} else {
		rec.clientID = string(clientID)
	}
	if l != nil && l.hostname == string(hostname) {
		rec.hostname = l.hostname
	} else {
		rec.hostname = string(hostname)
	}
	seq := t.j.append(&rec)
	t.apply(&rec)
	return seq
}

// release forgets key's binding on ip (DHCPRELEASE). It reports whether there was one.
// Like the others below, it queues a journal record; nothing waits for it.
func (t *leaseTable) release(key string, ip uint32) bool {
	l := t.byKey[key]
	if l == nil || l.ip != ip {
		return false
	}
	rec := record{op: opRelease, key: key, ip: ip}
	t.j.append(&rec)
	t.apply(&rec)
	return true
}

// decline quarantines ip until until and forgets key's lease on it (DHCPDECLINE).
func (t *leaseTable) decline(key string, ip uint32, until int64) bool {
	l := t.byKey[key]
	if l == nil || l.ip != ip {
		return false
	}
	rec := record{op: opDecline, key: key, ip: ip, expires: until}
	t.j.append(&rec)
	t.apply(&rec)
	return true
}

// forget removes key's lease whatever its state (an administrator's makedhcp -d).
func (t *leaseTable) forget(key string) bool {
	l := t.byKey[key]
	if l == nil {
		return false
	}
	rec := record{op: opForget, key: key, ip: l.ip}
	t.j.append(&rec)
	t.apply(&rec)
	return true
}

// apply changes the maps as rec says. Replay and the live path share it, so the state
// rebuilt from the journal is the state the server had.
func (t *leaseTable) apply(r *record) {
	switch r.op {
	case opBind:
		l := t.place(r.key, r.ip)
		l.state = LeaseBound
		l.expires = r.expires
		l.clientID = r.clientID
		l.hostname = r.hostname
	case opRelease, opForget:
		if l := t.byKey[r.key]; l != nil && (r.op == opForget || l.ip == r.ip) {
			delete(t.byKey, r.key)
			if t.byIP[l.ip] == l {
				delete(t.byIP, l.ip)
			}
		}
	case opDecline:
		if l := t.byKey[r.key]; l != nil && l.ip == r.ip {
			delete(t.byKey, r.key)
		}
		if old := t.byIP[r.ip]; old != nil && old.key != "" && t.byKey[old.key] == old {
			delete(t.byKey, old.key)
		}
		t.byIP[r.ip] = &lease{ip: r.ip, state: LeaseDeclined, expires: r.expires}
	}
}

// sweep drops offers that ran out, quarantines that ended, and bindings that expired more
// than retention ago. It returns how many leases it dropped.
func (t *leaseTable) sweep(now int64) int {
	n := 0
	for ip, l := range t.byIP {
		keep := l.live(now) || (l.state == LeaseBound && l.expires+t.retention > now)
		if keep {
			continue
		}
		delete(t.byIP, ip)
		if l.key != "" && t.byKey[l.key] == l {
			delete(t.byKey, l.key)
		}
		n++
	}
	return n
}

// snapshot returns the records that rebuild the table: what a compacted journal holds.
func (t *leaseTable) snapshot(now int64) []record {
	out := make([]record, 0, len(t.byIP))
	for _, l := range t.byIP {
		switch {
		case l.state == LeaseBound && l.expires+t.retention > now:
			out = append(out, record{op: opBind, key: l.key, ip: l.ip, expires: l.expires, clientID: l.clientID, hostname: l.hostname})
		case l.state == LeaseDeclined && l.live(now):
			out = append(out, record{op: opDecline, ip: l.ip, expires: l.expires})
		}
	}
	return out
}

// sortRecords orders records by address: a compacted file reads like a lease list. It runs
// without the table lock.
func sortRecords(recs []record) {
	slices.SortFunc(recs, func(a, b record) int {
		switch {
		case a.ip < b.ip:
			return -1
		case a.ip > b.ip:
			return 1
		}
		return 0
	})
}

func (l *lease) export() Lease {
	out := Lease{
		IP:       u32Addr(l.ip),
		State:    l.state,
		Expires:  time.Unix(l.expires, 0),
		Hostname: l.hostname,
	}
	if l.clientID != "" {
		out.ClientID = []byte(l.clientID)
	}
	if len(l.key) >= 2 && l.key[0] == 'h' {
		out.HWType = l.key[1]
		out.MAC = net.HardwareAddr(l.key[2:])
	}
	return out
}
