package inband

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/bmc/ipmi"
)

// fakeBMC answers bmcsetup's commands from its state, as a BMC would: LAN parameters per
// channel, user names, passwords and enables, channel access.
type fakeBMC struct {
	lanChannel uint8
	lan        map[ipmi.LANParam][]byte
	// Set In Progress with rollback, as ipmi_sim: while a set is in progress parameters
	// go to pending; Commit Write applies them, Set Complete discards what is left.
	inProgress bool
	pending    map[ipmi.LANParam][]byte
	names      [11]string
	passwords  [11]string
	enabled    [11]bool
	userPriv   [11]ipmi.Privilege
	chanPriv   map[bool]ipmi.Privilege // by volatile
	refuse     map[uint8]ipmi.CompletionCode
	noVLAN     bool
	noInProg   bool // no Set In Progress: each parameter applies at once
	calls      int
}

func newFakeBMC() *fakeBMC {
	b := &fakeBMC{lanChannel: 1, lan: map[ipmi.LANParam][]byte{}, chanPriv: map[bool]ipmi.Privilege{}, refuse: map[uint8]ipmi.CompletionCode{}}
	b.names[2], b.passwords[2] = "admin", "factory"
	return b
}

func (b *fakeBMC) Do(_ context.Context, r ipmi.Request) (ipmi.Response, error) {
	b.calls++
	resp := ipmi.Response{NetFn: r.NetFn + 1, Cmd: r.Cmd}
	if c, ok := b.refuse[r.Cmd]; ok {
		resp.Code = c
		return resp, nil
	}
	d := r.Data
	switch {
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdGetDeviceID:
		resp.Data = []byte{0x20, 1, 2, 3, 0x02, 0xbf, 0, 0, 0, 0, 0}
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdGetChannelInfo:
		medium := byte(0x05)
		if d[0] == b.lanChannel {
			medium = ipmi.MediumLAN
		}
		if d[0] > 7 {
			resp.Code = 0xCC
		}
		resp.Data = []byte{d[0], medium, 1, 0, 0xF2, 0x1B, 0, 0, 0}
	case r.NetFn == ipmi.NetFnTransport && r.Cmd == ipmi.CmdSetLANConfig:
		if d[0] != b.lanChannel {
			resp.Code = 0xCC
			break
		}
		if ipmi.LANParam(d[1]) == ipmi.LANVLANID && b.noVLAN {
			resp.Code = ipmi.CodeParamNotSupported
			break
		}
		if ipmi.LANParam(d[1]) == ipmi.LANSetInProgress {
			if b.noInProg {
				resp.Code = ipmi.CodeParamNotSupported
				break
			}
			switch d[2] {
			case 1:
				b.inProgress, b.pending = true, map[ipmi.LANParam][]byte{}
			case 2:
				for k, v := range b.pending {
					b.lan[k] = v
				}
				b.pending = map[ipmi.LANParam][]byte{}
			case 0:
				b.inProgress, b.pending = false, nil
			}
			break
		}
		if b.inProgress {
			b.pending[ipmi.LANParam(d[1])] = append([]byte(nil), d[2:]...)
		} else {
			b.lan[ipmi.LANParam(d[1])] = append([]byte(nil), d[2:]...)
		}
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdGetUserAccess:
		resp.Data = []byte{10, 1, 1, 0x14}
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdGetUserName:
		if d[0] > 10 {
			resp.Code = 0xCC
			break
		}
		resp.Data = make([]byte, 16)
		copy(resp.Data, b.names[d[0]])
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdSetUserName:
		name, _, _ := strings.Cut(string(d[1:17]), "\x00")
		b.names[d[0]&0x3F] = name
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdSetUserPassword:
		id := d[0] & 0x3F
		switch ipmi.PasswordOp(d[1]) {
		case ipmi.UserPassword:
			b.passwords[id] = strings.TrimRight(string(d[2:]), "\x00")
		case ipmi.UserEnable:
			b.enabled[id] = true
		}
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdSetUserAccess:
		b.userPriv[d[1]] = ipmi.Privilege(d[2])
	case r.NetFn == ipmi.NetFnApp && r.Cmd == ipmi.CmdSetChannelAccess:
		b.chanPriv[d[1]&0x80 != 0] = ipmi.Privilege(d[2] & 0x0F)
	default:
		resp.Code = ipmi.CodeInvalidCommand
	}
	return resp, nil
}

func TestSetup(t *testing.T) {
	base := Config{Addr: netip.MustParsePrefix("10.98.1.7/16"), Gateway: netip.MustParseAddr("10.98.0.254"), User: "root", Password: "s3cret-pw"}
	for _, tc := range []struct {
		name     string
		bmc      func(b *fakeBMC)
		cfg      func(c *Config)
		wantRes  Result
		wantUser string // the user's name at wantRes.UserID
		wantVLAN []byte
		wantErr  ipmi.CompletionCode
	}{
		{
			name:     "new user in the first free slot, LAN on channel 1",
			wantRes:  Result{Channel: 1, UserID: 3, Steps: []string{"ipsrc static", "ipaddr 10.98.1.7", "netmask 255.255.0.0", "defgw ipaddr 10.98.0.254", "vlan id off", "user 3 name root", "user 3 password", "user 3 access channel 1 privilege admin", "user 3 enable", "channel 1 access always, privilege limit admin", "channel 1 access always, privilege limit admin (active)"}},
			wantVLAN: []byte{0, 0},
		},
		{
			name:     "existing user, LAN on channel 2, VLAN",
			bmc:      func(b *fakeBMC) { b.lanChannel = 2 },
			cfg:      func(c *Config) { c.User, c.VLAN = "admin", 12 },
			wantRes:  Result{Channel: 2, UserID: 2, Steps: []string{"ipsrc static", "ipaddr 10.98.1.7", "netmask 255.255.0.0", "defgw ipaddr 10.98.0.254", "vlan id 12", "user 2 name admin", "user 2 password", "user 2 access channel 2 privilege admin", "user 2 enable", "channel 2 access always, privilege limit admin", "channel 2 access always, privilege limit admin (active)"}},
			wantVLAN: []byte{12, 0x80},
		},
		{
			name:    "no gateway, BMC without VLANs",
			bmc:     func(b *fakeBMC) { b.noVLAN = true },
			cfg:     func(c *Config) { c.Gateway = netip.Addr{} },
			wantRes: Result{Channel: 1, UserID: 3, Steps: []string{"ipsrc static", "ipaddr 10.98.1.7", "netmask 255.255.0.0", "defgw ipaddr 0.0.0.0", "user 3 name root", "user 3 password", "user 3 access channel 1 privilege admin", "user 3 enable", "channel 1 access always, privilege limit admin", "channel 1 access always, privilege limit admin (active)"}},
		},
		{
			name:     "BMC without Set In Progress",
			bmc:      func(b *fakeBMC) { b.noInProg = true },
			wantRes:  Result{Channel: 1, UserID: 3, Steps: []string{"ipsrc static", "ipaddr 10.98.1.7", "netmask 255.255.0.0", "defgw ipaddr 10.98.0.254", "vlan id off", "user 3 name root", "user 3 password", "user 3 access channel 1 privilege admin", "user 3 enable", "channel 1 access always, privilege limit admin", "channel 1 access always, privilege limit admin (active)"}},
			wantVLAN: []byte{0, 0},
		},
		{
			name:    "BMC refuses the password",
			bmc:     func(b *fakeBMC) { b.refuse[ipmi.CmdSetUserPassword] = ipmi.CodeInsufficientPriv },
			wantRes: Result{Channel: 1, UserID: 3, Steps: []string{"ipsrc static", "ipaddr 10.98.1.7", "netmask 255.255.0.0", "defgw ipaddr 10.98.0.254", "vlan id off", "user 3 name root"}},
			wantErr: ipmi.CodeInsufficientPriv,
		},
		{
			name:    "no BMC answers Get Device ID",
			bmc:     func(b *fakeBMC) { b.refuse[ipmi.CmdGetDeviceID] = ipmi.CodeInvalidCommand },
			wantErr: ipmi.CodeInvalidCommand,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBMC()
			if tc.bmc != nil {
				tc.bmc(b)
			}
			c := base
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			res, err := Setup(context.Background(), b, c)
			if tc.wantErr != 0 {
				var se *StepError
				if !errors.Is(err, tc.wantErr) || !errors.As(err, &se) {
					t.Fatalf("Setup = %v, want a StepError with %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), c.Password) {
					t.Errorf("error %q holds the password", err)
				}
			} else if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if diff := cmp.Diff(tc.wantRes, res); diff != "" {
				t.Errorf("Setup result (-want +got):\n%s", diff)
			}
			for _, s := range res.Steps {
				if strings.Contains(s, c.Password) {
					t.Errorf("step %q holds the password", s)
				}
			}
			if err != nil {
				return
			}
			want := map[ipmi.LANParam][]byte{ipmi.LANIPSource: {1}, ipmi.LANIPAddr: {10, 98, 1, 7}, ipmi.LANSubnetMask: {255, 255, 0, 0}, ipmi.LANDefaultGateway: {10, 98, 0, 254}}
			if !c.Gateway.IsValid() {
				want[ipmi.LANDefaultGateway] = []byte{0, 0, 0, 0}
			}
			if tc.wantVLAN != nil {
				want[ipmi.LANVLANID] = tc.wantVLAN
			}
			if diff := cmp.Diff(want, b.lan); diff != "" {
				t.Errorf("LAN parameters (-want +got):\n%s", diff)
			}
			id := res.UserID
			if b.names[id] != c.User || b.passwords[id] != c.Password || !b.enabled[id] || b.userPriv[id] != ipmi.PrivAdmin {
				t.Errorf("user %d: name %q password set %v enabled %v priv %v", id, b.names[id], b.passwords[id] == c.Password, b.enabled[id], b.userPriv[id])
			}
			if b.chanPriv[false] != ipmi.PrivAdmin || b.chanPriv[true] != ipmi.PrivAdmin {
				t.Errorf("channel access %v, want admin in both", b.chanPriv)
			}
		})
	}
}

func TestSetupBadConfig(t *testing.T) {
	good := Config{Addr: netip.MustParsePrefix("10.98.1.7/16"), User: "root", Password: "pw"}
	for _, tc := range []struct {
		name string
		cfg  func(c *Config)
	}{
		{"no address", func(c *Config) { c.Addr = netip.Prefix{} }},
		{"IPv6", func(c *Config) { c.Addr = netip.MustParsePrefix("fd00::1/64") }},
		{"IPv6 gateway", func(c *Config) { c.Gateway = netip.MustParseAddr("fd00::1") }},
		{"no user", func(c *Config) { c.User = "" }},
		{"no password", func(c *Config) { c.Password = "" }},
		{"long password", func(c *Config) { c.Password = "a-password-of-more-than-20-bytes" }},
		{"vlan", func(c *Config) { c.VLAN = 5000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBMC()
			c := good
			tc.cfg(&c)
			_, err := Setup(context.Background(), b, c)
			if err == nil {
				t.Fatal("Setup: no error")
			}
			if c.Password != "" && strings.Contains(err.Error(), c.Password) {
				t.Errorf("error %q holds the password", err)
			}
			if b.calls != 0 {
				t.Errorf("Setup sent %d commands for a bad config, want none", b.calls)
			}
		})
	}
}

func TestParseRecv(t *testing.T) {
	req := ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: ipmi.CmdGetDeviceID}
	for _, tc := range []struct {
		name       string
		netfn, cmd uint8
		data       []byte
		want       ipmi.Response
		wantErr    bool
	}{
		{name: "ok", netfn: 7, cmd: 1, data: []byte{0, 0x20, 1}, want: ipmi.Response{NetFn: 7, Cmd: 1, Data: []byte{0x20, 1}}},
		{name: "completion code", netfn: 7, cmd: 1, data: []byte{0xC1}, want: ipmi.Response{NetFn: 7, Cmd: 1, Code: 0xC1}},
		{name: "empty", netfn: 7, cmd: 1, wantErr: true},
		{name: "other command", netfn: 7, cmd: 2, data: []byte{0}, wantErr: true},
		{name: "other netfn", netfn: 1, cmd: 1, data: []byte{0}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRecv(req, tc.netfn, tc.cmd, tc.data)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseRecv = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); !tc.wantErr && diff != "" {
				t.Errorf("parseRecv (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseRecv: no answer from the driver panics parseRecv, and what parses keeps the
// completion code and data.
func FuzzParseRecv(f *testing.F) {
	f.Add(uint8(7), uint8(1), []byte{0, 0x20, 1})
	f.Add(uint8(0x0d), uint8(2), []byte{0xC1})
	f.Fuzz(func(t *testing.T, netfn, cmd uint8, data []byte) {
		req := ipmi.Request{NetFn: ipmi.NetFn(netfn &^ 1), Cmd: cmd}
		r, err := parseRecv(req, netfn, cmd, data)
		if err != nil {
			return
		}
		if byte(r.Code) != data[0] || string(r.Data) != string(data[1:]) || r.NetFn != req.NetFn+1 {
			t.Fatalf("parseRecv(%d, %d, %v) = %+v", netfn, cmd, data, r)
		}
	})
}
