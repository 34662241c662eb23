package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/provkit/provkit/bmc/ipmi/inband"
)

// runcmd=bmcsetup: provd's answer carries the BMC's settings (the JSON of provd's
// glue.DiscoveryBMC); nodeinit sets them over in-band IPMI (/dev/ipmi0) and posts what
// it did to <discover URL>/bmcsetup before it goes on. The password arrives over the
// same plain HTTP exchange as the rest of discovery, on the provisioning network, as
// in xCAT; nodeinit never prints it.

// BMCConfig is the "bmc" of provd's answer.
type BMCConfig struct {
	Addr     string `json:"addr"` // "10.98.1.7/16"
	Gateway  string `json:"gateway,omitempty"`
	User     string `json:"user"`
	Password string `json:"password"`
	VLAN     int    `json:"vlan,omitempty"`
}

// BMCResult is what nodeinit posts back: the JSON of provd's glue.DiscoveryBMCResult.
type BMCResult struct {
	UUID    string   `json:"uuid"`
	Node    string   `json:"node"`
	OK      bool     `json:"ok"`
	Channel int      `json:"channel,omitempty"`
	UserID  int      `json:"userid,omitempty"`
	Steps   []string `json:"steps,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// bmcDeviceWait bounds the wait for /dev/ipmi0: ipmi_si probes the system interface in
// the background after it loads.
const bmcDeviceWait = 30 * time.Second

// setupBMC applies c to the node's BMC over /dev/ipmi0.
func setupBMC(ctx context.Context, c BMCConfig, con *console) BMCResult {
	var res BMCResult
	fail := func(err error) BMCResult {
		res.Error = err.Error()
		return res
	}
	cfg, err := c.inbandConfig()
	if err != nil {
		return fail(err)
	}
	var dev *inband.Dev
	deadline := time.Now().Add(bmcDeviceWait)
	for {
		dev, err = inband.Open(inband.DefaultPath)
		if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return fail(fmt.Errorf("no in-band IPMI device (are ipmi_si and ipmi_devintf loaded, does the node have a BMC?): %w", err))
	}
	defer dev.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := inband.Setup(ctx, dev, cfg)
	res.Channel, res.UserID, res.Steps = int(r.Channel), int(r.UserID), r.Steps
	if err != nil {
		return fail(err)
	}
	res.OK = true
	return res
}

// inbandConfig checks the settings provd sent.
func (c BMCConfig) inbandConfig() (inband.Config, error) {
	cfg := inband.Config{User: c.User, Password: c.Password, VLAN: c.VLAN}
	var err error
	if cfg.Addr, err = netip.ParsePrefix(c.Addr); err != nil {
		return cfg, fmt.Errorf("bmc addr %q: want address/bits", c.Addr)
	}
	if c.Gateway != "" {
		if cfg.Gateway, err = netip.ParseAddr(c.Gateway); err != nil {
			return cfg, fmt.Errorf("bmc gateway %q: not an address", c.Gateway)
		}
	}
	return cfg, nil
}

// bmcResultURL is where the result goes: next to the discovery URL.
func bmcResultURL(discover string) string { return strings.TrimSuffix(discover, "/") + "/bmcsetup" }

// postBMCResult posts res to url.
func postBMCResult(ctx context.Context, client *http.Client, url string, res BMCResult) error {
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "provkit-nodeinit")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
