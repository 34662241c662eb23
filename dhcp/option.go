package dhcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// An Option is one DHCP option with an arbitrary code, as a network or a host adds it to
// its answers (for example code 150, the pxegrub menu of the Kerrighed configuration). Its
// value is the raw bytes on the wire; the constructors below encode the common kinds.
//
// An Option with the code of an option the server fills itself (router, DNS, host name ...)
// replaces the server's value. Codes 0, 53, 54, 82 and 255 are refused when serving starts.
type Option struct {
	Code  uint8
	Value []byte
}

// OptionString returns an option whose value is the text s (RFC 2132 "NVT ASCII" options
// such as 15, 17, 66, 67, or site-specific text options).
func OptionString(code uint8, s string) Option { return Option{code, []byte(s)} }

// OptionAddrs returns an option whose value is a list of IPv4 addresses (3, 6, 42, ...).
// Addresses that are not IPv4 are skipped.
func OptionAddrs(code uint8, addrs ...netip.Addr) Option {
	v := make([]byte, 0, 4*len(addrs))
	for _, a := range addrs {
		if a.Is4() {
			b := a.As4()
			v = append(v, b[:]...)
		}
	}
	return Option{code, v}
}

// OptionUint8 returns a one-byte option.
func OptionUint8(code uint8, v uint8) Option { return Option{code, []byte{v}} }

// OptionUint16 returns a two-byte big-endian option (26 interface MTU, 57, ...).
func OptionUint16(code uint8, v uint16) Option {
	return Option{code, binary.BigEndian.AppendUint16(nil, v)}
}

// OptionUint32 returns a four-byte big-endian option.
func OptionUint32(code uint8, v uint32) Option {
	return Option{code, binary.BigEndian.AppendUint32(nil, v)}
}

// OptionDuration returns a four-byte option holding d in whole seconds (51, 58, 59 ...).
func OptionDuration(code uint8, d time.Duration) Option {
	return OptionUint32(code, durationSeconds(d))
}

func durationSeconds(d time.Duration) uint32 {
	s := d / time.Second
	switch {
	case s < 0:
		return 0
	case s >= 0xffffffff:
		return 0xfffffffe // 0xffffffff means "infinite" on the wire
	}
	return uint32(s)
}

// reservedOption reports whether code is one the server alone may send.
func reservedOption(code uint8) bool {
	switch code {
	case 0, 53, 54, 82, 255:
		return true
	}
	return false
}

func checkOptions(where string, opts []Option) error {
	for _, o := range opts {
		if reservedOption(o.Code) {
			return fmt.Errorf("dhcp: %s: option %d is set by the server and cannot be configured", where, o.Code)
		}
		if len(o.Value) > 255*4 {
			return fmt.Errorf("dhcp: %s: option %d is %d bytes long, want at most %d", where, o.Code, len(o.Value), 255*4)
		}
	}
	return nil
}
