package inband

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/provkit/provkit/bmc/ipmi"
)

// Exchanger sends one request to a BMC and returns its answer; *Dev is the real one.
type Exchanger interface {
	Do(ctx context.Context, r ipmi.Request) (ipmi.Response, error)
}

// ExchangerFunc adapts a function to Exchanger.
type ExchangerFunc func(ctx context.Context, r ipmi.Request) (ipmi.Response, error)

// Do calls f.
func (f ExchangerFunc) Do(ctx context.Context, r ipmi.Request) (ipmi.Response, error) {
	return f(ctx, r)
}

// Config is what Setup sets on the BMC: xCAT's bmcsetup.
type Config struct {
	// Addr is the BMC's static IPv4 address with its prefix length. Required.
	Addr netip.Prefix
	// Gateway is the default gateway; if zero, 0.0.0.0 is set.
	Gateway netip.Addr
	// User and Password are the administrator account to set (at most 16 and 20 bytes).
	// Required.
	User, Password string
	// VLAN is the 802.1q VLAN ID of the LAN channel, 0 for none (tagging is switched off).
	VLAN int
	// Channel is the LAN channel to configure. If zero, the first channel from 1 to 11
	// whose medium is 802.3 LAN, else 1.
	Channel uint8
}

// Result says what Setup did.
type Result struct {
	Channel uint8
	UserID  uint8
	// Steps are the settings made, in order ("ipsrc static", "ipaddr 10.0.0.5", ...),
	// never with the password.
	Steps []string
}

// A StepError is a command of Setup the BMC refused or did not answer. It never holds
// the password.
type StepError struct {
	Step string
	Err  error // an ipmi.CompletionCode, or the exchange's error
}

func (e *StepError) Error() string { return "bmcsetup: " + e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Setup configures the BMC behind x as xCAT's bmcsetup does: the LAN channel gets a
// static address, netmask, gateway (and VLAN), and the user gets its name, password,
// administrator privilege on the channel and is enabled; the channel is made always
// available with administrator as its privilege limit. The user is the one that already
// has the name, else the first unnamed user from 2 on. It stops at the first command the
// BMC refuses, returning what was done before it.
func Setup(ctx context.Context, x Exchanger, c Config) (Result, error) {
	var res Result
	if !c.Addr.IsValid() || !c.Addr.Addr().Is4() {
		return res, fmt.Errorf("bmcsetup: address %s: want an IPv4 address with its prefix length", c.Addr)
	}
	if c.Gateway.IsValid() && !c.Gateway.Is4() {
		return res, fmt.Errorf("bmcsetup: gateway %s is not an IPv4 address", c.Gateway)
	}
	nameReq, err := ipmi.SetUserName(0, c.User)
	if err != nil {
		return res, fmt.Errorf("bmcsetup: user: %w", err)
	}
	if _, err := ipmi.SetUserPassword(0, ipmi.UserPassword, c.Password); err != nil || c.Password == "" {
		return res, errors.New("bmcsetup: the password must be 1 to 20 bytes without NUL")
	}
	vlan, err := ipmi.VLANParam(c.VLAN)
	if err != nil {
		return res, fmt.Errorf("bmcsetup: %w", err)
	}
	do := func(step string, r ipmi.Request) ([]byte, error) {
		resp, err := x.Do(ctx, r)
		if err == nil && resp.Code != ipmi.CodeOK {
			err = resp.Code
		}
		if err != nil {
			return nil, &StepError{Step: step, Err: err}
		}
		return resp.Data, nil
	}
	if _, err := do("get device id", ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: ipmi.CmdGetDeviceID}); err != nil {
		return res, err
	}
	res.Channel = c.Channel
	if res.Channel == 0 {
		res.Channel = 1
		for ch := uint8(1); ch <= 11; ch++ {
			resp, err := x.Do(ctx, ipmi.GetChannelInfo(ch))
			if err != nil {
				return res, &StepError{Step: "get channel info " + strconv.Itoa(int(ch)), Err: err}
			}
			if info, err := ipmi.ParseChannelInfo(resp.Data); resp.Code == ipmi.CodeOK && err == nil && info.Medium == ipmi.MediumLAN {
				res.Channel = ch
				break
			}
		}
	}
	ch := res.Channel
	ip, _ := ipmi.IPv4Param(c.Addr.Addr())
	mask, _ := ipmi.MaskParam(c.Addr.Bits())
	gw := []byte{0, 0, 0, 0}
	if c.Gateway.IsValid() {
		gw, _ = ipmi.IPv4Param(c.Gateway)
	}
	// Set In Progress is optional (0x80: not supported); a BMC that has it applies the
	// parameters together at Commit Write.
	inProgress := false
	if resp, err := x.Do(ctx, ipmi.SetLANConfig(ch, ipmi.LANSetInProgress, 1)); err == nil && resp.Code == ipmi.CodeOK {
		inProgress = true
	}
	lan := []struct {
		step  string
		param ipmi.LANParam
		data  []byte
	}{
		{"ipsrc static", ipmi.LANIPSource, []byte{ipmi.IPSourceStatic}},
		{"ipaddr " + c.Addr.Addr().String(), ipmi.LANIPAddr, ip},
		{"netmask " + netip.AddrFrom4([4]byte(mask)).String(), ipmi.LANSubnetMask, mask},
		{"defgw ipaddr " + netip.AddrFrom4([4]byte(gw)).String(), ipmi.LANDefaultGateway, gw},
	}
	for _, p := range lan {
		if _, err := do(fmt.Sprintf("channel %d: %s", ch, p.step), ipmi.SetLANConfig(ch, p.param, p.data...)); err != nil {
			return res, err
		}
		res.Steps = append(res.Steps, p.step)
	}
	vstep := "vlan id off"
	if c.VLAN != 0 {
		vstep = "vlan id " + strconv.Itoa(c.VLAN)
	}
	if _, err := do(fmt.Sprintf("channel %d: %s", ch, vstep), ipmi.SetLANConfig(ch, ipmi.LANVLANID, vlan...)); err != nil {
		// Setting no VLAN on a BMC without VLAN support is no failure.
		if c.VLAN != 0 || !errors.Is(err, ipmi.CodeParamNotSupported) {
			return res, err
		}
	} else {
		res.Steps = append(res.Steps, vstep)
	}
	if inProgress {
		// Commit Write, then Set Complete, as ipmitool does: a BMC that rolls back
		// (OpenIPMI's ipmi_sim does) discards at Set Complete what was not committed.
		// Commit Write is optional: a BMC without it has applied each parameter.
		_, _ = x.Do(ctx, ipmi.SetLANConfig(ch, ipmi.LANSetInProgress, 2))
		if _, err := do(fmt.Sprintf("channel %d: set complete", ch), ipmi.SetLANConfig(ch, ipmi.LANSetInProgress, 0)); err != nil {
			return res, err
		}
	}

	id, err := findUser(ctx, x, ch, c.User)
	if err != nil {
		return res, err
	}
	res.UserID = id
	nameReq.Data[0] = id
	steps := []struct {
		step string
		req  ipmi.Request
	}{
		{fmt.Sprintf("user %d name %s", id, c.User), nameReq},
		{fmt.Sprintf("user %d password", id), must(ipmi.SetUserPassword(id, ipmi.UserPassword, c.Password))},
		{fmt.Sprintf("user %d access channel %d privilege admin", id, ch), ipmi.SetUserAccess(ch, id, ipmi.PrivAdmin)},
		{fmt.Sprintf("user %d enable", id), must(ipmi.SetUserPassword(id, ipmi.UserEnable, ""))},
		{fmt.Sprintf("channel %d access always, privilege limit admin", ch), ipmi.SetChannelAccess(ch, false, ipmi.PrivAdmin)},
		{fmt.Sprintf("channel %d access always, privilege limit admin (active)", ch), ipmi.SetChannelAccess(ch, true, ipmi.PrivAdmin)},
	}
	for _, s := range steps {
		if _, err := do(s.step, s.req); err != nil {
			return res, err
		}
		res.Steps = append(res.Steps, s.step)
	}
	return res, nil
}

func must(r ipmi.Request, _ error) ipmi.Request { return r }

// findUser returns the ID of the user called name, else of the first unnamed user from 2
// on (user 1 is the anonymous user).
func findUser(ctx context.Context, x Exchanger, ch uint8, name string) (uint8, error) {
	resp, err := x.Do(ctx, ipmi.GetUserAccess(ch, 1))
	if err == nil && resp.Code != ipmi.CodeOK {
		err = resp.Code
	}
	if err != nil {
		return 0, &StepError{Step: "get user access", Err: err}
	}
	ua, err := ipmi.ParseUserAccess(resp.Data)
	if err != nil {
		return 0, &StepError{Step: "get user access", Err: err}
	}
	free := uint8(0)
	for id := uint8(2); id <= ua.MaxUsers; id++ {
		resp, err := x.Do(ctx, ipmi.GetUserName(id))
		if err != nil {
			return 0, &StepError{Step: "get user name " + strconv.Itoa(int(id)), Err: err}
		}
		if resp.Code != ipmi.CodeOK {
			continue
		}
		n, err := ipmi.ParseUserName(resp.Data)
		if err != nil {
			continue
		}
		if n == name {
			return id, nil
		}
		if n == "" && free == 0 {
			free = id
		}
	}
	if free == 0 {
		return 0, fmt.Errorf("bmcsetup: the BMC has no user %q and no free user slot (of %d)", name, ua.MaxUsers)
	}
	return free, nil
}
