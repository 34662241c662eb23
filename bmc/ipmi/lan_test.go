package ipmi

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBMCSetupRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  Request
		want Request
	}{
		{"set lan ip", SetLANConfig(1, LANIPAddr, 10, 0, 0, 5), Request{NetFn: NetFnTransport, Cmd: CmdSetLANConfig, Data: []byte{1, 3, 10, 0, 0, 5}}},
		{"get lan ip", GetLANConfig(1, LANIPAddr), Request{NetFn: NetFnTransport, Cmd: CmdGetLANConfig, Data: []byte{1, 3, 0, 0}}},
		{"channel info", GetChannelInfo(2), Request{NetFn: NetFnApp, Cmd: CmdGetChannelInfo, Data: []byte{2}}},
		{"channel access non-volatile", SetChannelAccess(1, false, PrivAdmin), Request{NetFn: NetFnApp, Cmd: CmdSetChannelAccess, Data: []byte{1, 0x42, 0x44}}},
		{"channel access volatile", SetChannelAccess(1, true, PrivAdmin), Request{NetFn: NetFnApp, Cmd: CmdSetChannelAccess, Data: []byte{1, 0x82, 0x84}}},
		{"user access", SetUserAccess(1, 3, PrivAdmin), Request{NetFn: NetFnApp, Cmd: CmdSetUserAccess, Data: []byte{0xB1, 3, 4}}},
		{"get user access", GetUserAccess(1, 1), Request{NetFn: NetFnApp, Cmd: CmdGetUserAccess, Data: []byte{1, 1}}},
		{"get user name", GetUserName(3), Request{NetFn: NetFnApp, Cmd: CmdGetUserName, Data: []byte{3}}},
		{"user name", must(SetUserName(3, "root")), Request{NetFn: NetFnApp, Cmd: CmdSetUserName, Data: append([]byte{3, 'r', 'o', 'o', 't'}, make([]byte, 12)...)}},
		{"password 16", must(SetUserPassword(3, UserPassword, "pw")), Request{NetFn: NetFnApp, Cmd: CmdSetUserPassword, Data: append([]byte{3, 2, 'p', 'w'}, make([]byte, 14)...)}},
		{"password 20", must(SetUserPassword(3, UserPassword, "0123456789abcdefXYZ")), Request{NetFn: NetFnApp, Cmd: CmdSetUserPassword, Data: append([]byte{0x83, 2}, append([]byte("0123456789abcdefXYZ"), 0)...)}},
		{"enable", must(SetUserPassword(3, UserEnable, "ignored")), Request{NetFn: NetFnApp, Cmd: CmdSetUserPassword, Data: []byte{3, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func must(r Request, err error) Request {
	if err != nil {
		panic(err)
	}
	return r
}

func TestBMCSetupBadInput(t *testing.T) {
	secret := "a-secret-password-too-long"
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"empty name", func() error { _, err := SetUserName(2, ""); return err }()},
		{"long name", func() error { _, err := SetUserName(2, strings.Repeat("x", 17)); return err }()},
		{"long password", func() error { _, err := SetUserPassword(2, UserPassword, secret); return err }()},
		{"NUL password", func() error { _, err := SetUserPassword(2, UserPassword, "a\x00b"); return err }()},
		{"mask", func() error { _, err := MaskParam(33); return err }()},
		{"vlan", func() error { _, err := VLANParam(4095); return err }()},
		{"ipv6", func() error { _, err := IPv4Param(netip.MustParseAddr("::1")); return err }()},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if strings.Contains(tc.err.Error(), secret) {
			t.Errorf("%s: error %q holds the password", tc.name, tc.err)
		}
	}
}

func TestLANParams(t *testing.T) {
	for _, tc := range []struct {
		bits int
		want []byte
	}{{24, []byte{255, 255, 255, 0}}, {16, []byte{255, 255, 0, 0}}, {0, []byte{0, 0, 0, 0}}, {32, []byte{255, 255, 255, 255}}, {20, []byte{255, 255, 240, 0}}} {
		if got, err := MaskParam(tc.bits); err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("MaskParam(%d) = %v, %v, want %v", tc.bits, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		id   int
		want []byte
	}{{0, []byte{0, 0}}, {12, []byte{12, 0x80}}, {4094, []byte{0xFE, 0x8F}}} {
		if got, err := VLANParam(tc.id); err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("VLANParam(%d) = %v, %v, want %v", tc.id, got, err, tc.want)
		}
	}
}

func TestBMCSetupParsers(t *testing.T) {
	name := append([]byte("admin"), make([]byte, 11)...)
	if got, err := ParseUserName(name); err != nil || got != "admin" {
		t.Errorf("ParseUserName = %q, %v", got, err)
	}
	if got, err := ParseChannelInfo([]byte{1, 4, 1, 0x80, 0xF2, 0x1B, 0, 0, 0}); err != nil || got != (ChannelInfo{Channel: 1, Medium: MediumLAN, Protocol: 1}) {
		t.Errorf("ParseChannelInfo = %+v, %v", got, err)
	}
	if got, err := ParseUserAccess([]byte{63, 0x42, 1, 0x34}); err != nil || got != (UserAccess{MaxUsers: 63, Enabled: 2, Fixed: 1, Callin: true, LinkAuth: true, IPMIMsg: true, Priv: PrivAdmin}) {
		t.Errorf("ParseUserAccess = %+v, %v", got, err)
	}
	if got, err := ParseLANConfig([]byte{0x11, 10, 0, 0, 5}); err != nil || !bytes.Equal(got, []byte{10, 0, 0, 5}) {
		t.Errorf("ParseLANConfig = %v, %v", got, err)
	}
	for _, short := range [][]byte{nil, {1}} {
		_, err1 := ParseUserName(short)
		_, err2 := ParseChannelInfo(short)
		_, err3 := ParseUserAccess(short)
		_, err4 := ParseLANConfig(short)
		for _, err := range []error{err1, err2, err3, err4} {
			if !errors.Is(err, ErrShort) {
				t.Errorf("parse %v = %v, want ErrShort", short, err)
			}
		}
	}
}

// FuzzParseBMCSetup: the parsers of bmcsetup's answers never panic, and what they parse
// re-encodes to what they read.
func FuzzParseBMCSetup(f *testing.F) {
	f.Add([]byte{1, 4, 1, 0x80, 0xF2, 0x1B, 0, 0, 0})
	f.Add(append([]byte("admin"), make([]byte, 11)...))
	f.Add([]byte{63, 0x42, 1, 0x34})
	f.Add([]byte{0x11, 10, 0, 0, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := ParseUserName(b); err == nil {
			if len(n) > 16 || !bytes.HasPrefix(b, []byte(n)) {
				t.Fatalf("ParseUserName(%v) = %q", b, n)
			}
			if n != "" {
				r, err := SetUserName(1, n)
				if err != nil {
					t.Fatalf("SetUserName(%q): %v", n, err)
				}
				if back, _ := ParseUserName(r.Data[1:]); back != n {
					t.Fatalf("round trip %q -> %q", n, back)
				}
			}
		}
		if c, err := ParseChannelInfo(b); err == nil && (c.Channel > 15 || c.Medium > 0x7F) {
			t.Fatalf("ParseChannelInfo(%v) = %+v", b, c)
		}
		if u, err := ParseUserAccess(b); err == nil && (u.MaxUsers > 63 || u.Priv > 15) {
			t.Fatalf("ParseUserAccess(%v) = %+v", b, u)
		}
		if d, err := ParseLANConfig(b); err == nil && len(d) != len(b)-1 {
			t.Fatalf("ParseLANConfig(%v) = %v", b, d)
		}
	})
}
