package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// ErrNotFound is returned by a Hosts lookup when there is no reservation.
var ErrNotFound = errors.New("dhcp: host not found")

// A Host is a reservation: what one node is given. The zero IP means "known, but give it a
// dynamic address" (a discovered node that has no address yet).
type Host struct {
	// Name is the node name, used in logs and as the host name when Hostname is empty.
	Name string
	// MAC and ClientID are the keys the reservation is found by. HostTable uses them;
	// a Hosts implementation may leave them empty in the Host it returns.
	MAC      net.HardwareAddr
	ClientID []byte
	// IP is the reserved address. It must lie in one of the server's networks.
	IP netip.Addr
	// Hostname is option 12. If empty, Name.
	Hostname string
	// Boot overrides the network's boot answer field by field.
	Boot Boot
	// Options are extra options for this host; they override the network's options and
	// the server's own values with the same code.
	Options []Option
	// Deny makes the server ignore the host (xCAT's "deny booting" for a MAC marked *NOIP*).
	Deny bool
}

func (h *Host) hostname() string {
	if h.Hostname != "" {
		return h.Hostname
	}
	return h.Name
}

// Validate checks the reservation and returns an error naming the host and the field.
func (h *Host) Validate() error {
	name := h.Name
	if name == "" {
		name = h.MAC.String()
	}
	if h.IP.IsValid() && !h.IP.Is4() {
		return fmt.Errorf("dhcp: host %s: address %s is not IPv4", name, h.IP)
	}
	if len(h.MAC) > 16 {
		return fmt.Errorf("dhcp: host %s: hardware address %s is longer than 16 bytes", name, h.MAC)
	}
	if len(h.hostname()) > 255 {
		return fmt.Errorf("dhcp: host %s: host name longer than 255 bytes", name)
	}
	if err := h.Boot.validate("host " + name); err != nil {
		return err
	}
	return checkOptions("host "+name, h.Options)
}

// Hosts finds reservations. It is called from the packet path once per request, so it
// must be fast (answer from memory; examples/provd keeps a HostTable in sync with the
// cluster store) and safe for concurrent use.
type Hosts interface {
	// LookupHost returns the reservation for mac, or an error wrapping ErrNotFound.
	LookupHost(ctx context.Context, mac net.HardwareAddr) (Host, error)
}

// ClientIDHosts is an optional capability of Hosts: reservations found by client
// identifier (option 61), tried when LookupHost finds nothing.
type ClientIDHosts interface {
	LookupClientID(ctx context.Context, id []byte) (Host, error)
}

// AddrHosts is an optional capability of Hosts: the reservation that owns an address.
// When Hosts has it, the dynamic pool never hands out an address reserved for a host.
type AddrHosts interface {
	LookupAddr(ctx context.Context, ip netip.Addr) (Host, error)
}

// HostsFunc adapts a function to Hosts.
type HostsFunc func(ctx context.Context, mac net.HardwareAddr) (Host, error)

// LookupHost calls f.
func (f HostsFunc) LookupHost(ctx context.Context, mac net.HardwareAddr) (Host, error) {
	return f(ctx, mac)
}

// HostTable is an in-memory Hosts, safe for concurrent use, keyed by MAC, client identifier
// and address. It implements Hosts, ClientIDHosts and AddrHosts. The zero value is empty and
// ready to use. It is what `makedhcp <noderange>` / `-d` / `-q` edit in a running server.
type HostTable struct {
	mu     sync.RWMutex
	byMAC  map[string]*Host
	byID   map[string]*Host
	byAddr map[netip.Addr]*Host
}

var (
	_ Hosts         = (*HostTable)(nil)
	_ ClientIDHosts = (*HostTable)(nil)
	_ AddrHosts     = (*HostTable)(nil)
)

// Put adds or replaces the reservation of h.MAC (and of h.ClientID when set). A reservation
// that held the same MAC, client identifier or address before is removed first, so each key
// and each address belongs to one host. h must have a MAC or a client identifier.
func (t *HostTable) Put(h Host) error {
	if len(h.MAC) == 0 && len(h.ClientID) == 0 {
		return fmt.Errorf("dhcp: host %q: no hardware address and no client identifier", h.Name)
	}
	if err := h.Validate(); err != nil {
		return err
	}
	h.MAC = slices.Clone(h.MAC)
	h.ClientID = slices.Clone(h.ClientID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byMAC == nil {
		t.byMAC = make(map[string]*Host)
		t.byID = make(map[string]*Host)
		t.byAddr = make(map[netip.Addr]*Host)
	}
	if len(h.MAC) > 0 {
		t.removeLocked(t.byMAC[string(h.MAC)])
	}
	if len(h.ClientID) > 0 {
		t.removeLocked(t.byID[string(h.ClientID)])
	}
	if h.IP.IsValid() {
		t.removeLocked(t.byAddr[h.IP])
	}
	p := &h
	if len(h.MAC) > 0 {
		t.byMAC[string(h.MAC)] = p
	}
	if len(h.ClientID) > 0 {
		t.byID[string(h.ClientID)] = p
	}
	if h.IP.IsValid() {
		t.byAddr[h.IP] = p
	}
	return nil
}

// Delete removes the reservation of mac and reports whether there was one.
func (t *HostTable) Delete(mac net.HardwareAddr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.byMAC[string(mac)]
	t.removeLocked(h)
	return h != nil
}

func (t *HostTable) removeLocked(h *Host) {
	if h == nil {
		return
	}
	if t.byMAC[string(h.MAC)] == h {
		delete(t.byMAC, string(h.MAC))
	}
	if t.byID[string(h.ClientID)] == h {
		delete(t.byID, string(h.ClientID))
	}
	if t.byAddr[h.IP] == h {
		delete(t.byAddr, h.IP)
	}
}

// Len returns the number of reservations.
func (t *HostTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := len(t.byMAC)
	for _, h := range t.byID {
		if len(h.MAC) == 0 {
			n++
		}
	}
	return n
}

// All returns every reservation, sorted by name then MAC.
func (t *HostTable) All() []Host {
	t.mu.RLock()
	out := make([]Host, 0, len(t.byMAC))
	for _, h := range t.byMAC {
		out = append(out, *h)
	}
	for _, h := range t.byID {
		if len(h.MAC) == 0 {
			out = append(out, *h)
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Host) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(string(a.MAC), string(b.MAC))
	})
	return out
}

// LookupHost implements Hosts.
func (t *HostTable) LookupHost(_ context.Context, mac net.HardwareAddr) (Host, error) {
	t.mu.RLock()
	h := t.byMAC[string(mac)]
	t.mu.RUnlock()
	if h == nil {
		return Host{}, ErrNotFound
	}
	return *h, nil
}

// LookupClientID implements ClientIDHosts.
func (t *HostTable) LookupClientID(_ context.Context, id []byte) (Host, error) {
	t.mu.RLock()
	h := t.byID[string(id)]
	t.mu.RUnlock()
	if h == nil {
		return Host{}, ErrNotFound
	}
	return *h, nil
}

// LookupAddr implements AddrHosts.
func (t *HostTable) LookupAddr(_ context.Context, ip netip.Addr) (Host, error) {
	t.mu.RLock()
	h := t.byAddr[ip]
	t.mu.RUnlock()
	if h == nil {
		return Host{}, ErrNotFound
	}
	return *h, nil
}
