package bmc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Secret is a password. It prints as <redacted> with every fmt verb, in slog and in
// JSON, so a Target can be logged whole; string(s) is the only way to the value.
type Secret string

const redacted = "<redacted>"

// String returns <redacted>.
func (Secret) String() string { return redacted }

// GoString returns <redacted>.
func (Secret) GoString() string { return redacted }

// Format writes <redacted> for every verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// MarshalText makes encoders (JSON, slog's JSON handler) write <redacted>.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue makes slog print <redacted>.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Management types (xCAT's nodehm.mgt) this package drives.
const (
	MgtIPMI     = "ipmi"     // IPMI v2.0 over LAN: the native lanplus client (the default)
	MgtIpmitool = "ipmitool" // IPMI through bmclib's ipmitool provider (one ipmitool run per command)
	MgtRedfish  = "redfish"  // Redfish through bmclib's redfish (gofish) provider
	MgtOpenBMC  = "openbmc"  // OpenBMC: Redfish through bmclib's redfish provider, ETag matching off
)

// Target is one node's BMC: what the cluster's tables say about it.
type Target struct {
	// Node is the node's name; results and log lines carry it.
	Node string
	// Mgt is the management type (nodehm.mgt): "ipmi" (or empty), "redfish", "openbmc",
	// or "ipmitool" to drive an IPMI BMC through the ipmitool program.
	Mgt string
	// Addr is the BMC as host or host:port (ipmi.bmc). The port defaults to 623 for IPMI
	// and 443 for Redfish and OpenBMC. A bare IPv6 address needs no brackets.
	Addr string
	// User and Password are the BMC credentials (ipmi.username and ipmi.password, or the
	// passwd table's entry for the management type).
	User     string
	Password Secret
}

// ErrBadTarget reports a target this package cannot use; the error names the field.
var ErrBadTarget = errors.New("bad BMC target")

// ErrUnsupported reports a management type or operation a provider does not support.
var ErrUnsupported = errors.New("not supported")

// endpoint is a validated target.
type endpoint struct {
	mgt  string
	host string
	port string
}

func (e endpoint) hostPort() string { return net.JoinHostPort(e.host, e.port) }

// parse checks t and fills in the defaults.
func (t Target) parse() (endpoint, error) {
	e := endpoint{mgt: strings.ToLower(strings.TrimSpace(t.Mgt))}
	def := "623"
	switch e.mgt {
	case "", MgtIPMI:
		e.mgt = MgtIPMI
	case MgtIpmitool:
	case MgtRedfish, MgtOpenBMC:
		def = "443"
	default:
		return e, fmt.Errorf("management type %q: %w (want ipmi, redfish or openbmc)", t.Mgt, ErrUnsupported)
	}
	addr := strings.TrimSpace(t.Addr)
	if addr == "" {
		return e, fmt.Errorf("%w: no BMC address (ipmi.bmc is empty)", ErrBadTarget)
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		e.host, e.port = host, port
	} else if a, perr := netip.ParseAddr(strings.Trim(addr, "[]")); perr == nil && a.Is6() {
		e.host, e.port = a.String(), def
	} else if strings.Contains(addr, ":") {
		return e, fmt.Errorf("%w: BMC address %q: want host or host:port", ErrBadTarget, t.Addr)
	} else {
		e.host, e.port = addr, def
	}
	if e.host == "" || strings.ContainsAny(e.host, " /\t") {
		return e, fmt.Errorf("%w: BMC address %q: bad host", ErrBadTarget, t.Addr)
	}
	if p, err := strconv.Atoi(e.port); err != nil || p < 1 || p > 65535 {
		return e, fmt.Errorf("%w: BMC address %q: port %q is not 1-65535", ErrBadTarget, t.Addr, e.port)
	}
	return e, nil
}
