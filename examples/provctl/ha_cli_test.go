package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHACommandErrors: bad hasetup and hafailover command lines get an error naming what is
// wrong, before anything is touched.
func TestHACommandErrors(t *testing.T) {
	c := newCLI(t)
	shared := filepath.Join(c.dir, "shared")
	state := "--state-dir=" + filepath.Join(c.dir, "state")
	base := []string{"-p", shared, "-i", "eth0", "-v", "10.96.0.10", state}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mode", append([]string{"hafailover"}, base...), "exactly one of -a, -d, --auto, --status"},
		{"two modes", append([]string{"hafailover", "-a", "-d"}, base...), "exactly one of"},
		{"no shared path", []string{"hafailover", "-a", "-i", "eth0", "-v", "10.96.0.10", state}, "-p (shared-data path), -i (NIC) and -v (virtual IP) are required"},
		{"bad vip", []string{"hafailover", "-a", "-p", shared, "-i", "eth0", "-v", "10.96.0", state}, `-v "10.96.0": want an IPv4 address`},
		{"bad netmask", append([]string{"hafailover", "-a", "-m", "255.0.255.0"}, base...), `-m "255.0.255.0"`},
		{"mysql", append([]string{"hafailover", "-a", "-t", "mysql"}, base...), "-t mysql: provkit's store is SQLite or PostgreSQL"},
		{"unknown db type", append([]string{"hafailover", "-a", "-t", "oracle"}, base...), `-t "oracle"`},
		{"bad service", append([]string{"hafailover", "-a", "--service", "provd"}, base...), `service "provd": want NAME=unit:UNIT`},
		{"bad link", append([]string{"hafailover", "-a", "--service", "x=unit:x", "--link", "tftpboot"}, base...), `--link "tftpboot"`},
		{"bad interface", []string{"hafailover", "-a", "-p", shared, "-i", "eth 0", "-v", "10.96.0.10", "--service", "x=unit:x", state}, `interface "eth 0"`},
		{"auto without postgres", append([]string{"hafailover", "--auto", "--service", "x=unit:x"}, base...), "automatic failover needs a PostgreSQL store"},
		{"lock not postgres", append([]string{"hafailover", "--auto", "--lock", "/tmp/x.db", "--service", "x=unit:x"}, base...), `--lock "/tmp/x.db": want a postgres:// URL`},
		{"deactivate with nothing recorded", []string{"hafailover", "-d", state}, "give -p, -i and -v"},
		{"setup without name", append([]string{"hasetup"}, base...), "-n (the virtual IP's host name) is required"},
		{"positional argument", append([]string{"hasetup", "extra"}, base...), "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e := c.fails(tt.args...); !strings.Contains(e, tt.want) {
				t.Errorf("provctl %s: error %q, want it to contain %q", strings.Join(tt.args, " "), e, tt.want)
			}
		})
	}
}

// TestHAActivateRecorded: -a on a node whose last activation was not undone is refused, and
// the record -d needs is left as it was.
func TestHAActivateRecorded(t *testing.T) {
	c := newCLI(t)
	stateDir := filepath.Join(c.dir, "state")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(stateDir, haStateFile)
	const old = `{"nic": "eth9", "vip": "10.96.0.99/24"}` + "\n"
	if err := os.WriteFile(record, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	e := c.fails("hafailover", "-a", "-p", filepath.Join(c.dir, "shared"), "-i", "lo", "-v", "10.96.0.10",
		"--service", "x=unit:x", "--state-dir="+stateDir)
	if !strings.Contains(e, "already active") || !strings.Contains(e, record) {
		t.Errorf("error %q, want it to say the node is already active and name %s", e, record)
	}
	if b, err := os.ReadFile(record); err != nil || string(b) != old {
		t.Errorf("%s after the refused -a: %q, %v; want it unchanged", record, b, err)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "shared")); !os.IsNotExist(err) {
		t.Errorf("the refused -a touched the shared path: %v", err)
	}
}

func TestHAVIPPrefix(t *testing.T) {
	tests := []struct {
		vip, mask string
		want      string
	}{
		{"10.96.0.10", "255.255.255.0", "10.96.0.10/24"},
		{"10.96.0.10", "255.255.0.0", "10.96.0.10/16"},
		{"10.96.0.10", "24", "10.96.0.10/24"},
		{"10.96.0.10", "/26", "10.96.0.10/26"},
		{"10.96.0.10", "33", ""},
		{"10.96.0.10", "255.255.255.1", ""},
		{"10.96.0.10", "24x", ""},
		{"fd00::1", "64", ""},
	}
	for _, tt := range tests {
		f := &haFlags{vip: tt.vip, netmask: tt.mask}
		got, err := f.vipPrefix()
		if tt.want == "" {
			if err == nil {
				t.Errorf("vipPrefix(%s, %s) = %v, want an error", tt.vip, tt.mask, got)
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("vipPrefix(%s, %s) = %v, %v; want %s", tt.vip, tt.mask, got, err, tt.want)
		}
	}
}
