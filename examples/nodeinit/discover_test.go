package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdlineDiscover(t *testing.T) {
	cfg, err := ParseCmdline("provkit.discover=http://10.97.0.1/api/v1/discover BOOTIF=01-52-54-00-97-00-0a provkit.lldpwait=3 console=ttyS0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DiscoverURL.String() != "http://10.97.0.1/api/v1/discover" || cfg.LLDPWait != 3*time.Second || cfg.ImageURL != nil {
		t.Errorf("ParseCmdline = %+v", cfg)
	}
	for _, bad := range []string{
		"provkit.discover=ftp://x/",
		"provkit.discover=http://x/ imgurl=http://x/r.cpio.gz",
		"provkit.discover=http://x/ provkit.lldpwait=999",
		"provkit.discover=http://x/ provkit.lldpwait=-1",
	} {
		if _, err := ParseCmdline(bad); !errors.Is(err, ErrCmdline) {
			t.Errorf("ParseCmdline(%q) = %v, want ErrCmdline", bad, err)
		}
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestInventory(t *testing.T) {
	root := writeTree(t, map[string]string{
		"sys/class/dmi/id/product_uuid":   "4C4C4544-0035-4710-8036-B4C04F4E3132\n",
		"sys/class/dmi/id/product_serial": "B4C04F4E\n",
		"sys/class/dmi/id/product_name":   "PowerEdge R640\n",
		"sys/class/dmi/id/sys_vendor":     "Dell Inc.\n",
		"proc/cpuinfo":                    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n",
		"proc/meminfo":                    "MemTotal:       196608000 kB\nMemFree: 1 kB\n",
		"sys/block/sda/size":              "937703088\n",
		"sys/block/loop0/size":            "100\n",
		"sys/block/nvme0n1/size":          "0\n",
	})
	mac, _ := net.ParseMAC("52:54:00:97:00:0a")
	nics := []NIC{{Name: "eth0", MAC: mac.String(), Driver: "virtio_net"}}
	got := sysfs{root: root}.inventory(mac, nics)
	want := Report{UUID: "4c4c4544-0035-4710-8036-b4c04f4e3132", BootMAC: "52:54:00:97:00:0a", Arch: got.Arch,
		CPUType: "Intel(R) Xeon(R) Gold 6130", CPUCount: 2, MemoryMiB: 192000, MTM: "PowerEdge R640", Serial: "B4C04F4E",
		Vendor: "Dell Inc.", Disks: []string{"sda:480GB"}, NICs: nics}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	// qemu has no DMI UUID unless given one: the boot MAC names the report.
	empty := writeTree(t, map[string]string{"sys/class/dmi/id/product_uuid": "00000000-0000-0000-0000-000000000000"})
	if got := (sysfs{root: empty}).inventory(mac, nil); got.UUID != "mac-52540097000a" {
		t.Errorf("UUID without DMI = %q, want mac-52540097000a", got.UUID)
	}
}

func TestDiscoverLoop(t *testing.T) {
	var calls []string
	answers := []Answer{
		{Action: "wait", Retry: 1, Message: "no node matches"},
		{Action: "wait", Retry: 1000},
		{Node: "n2", IP: "10.97.0.12", Action: "reboot", Message: "you are n2"},
	}
	var waits []time.Duration
	m := fakeMachine("provkit.discover=http://10.97.0.1/api/v1/discover", "", &calls)
	m.startDiscovery = func(ctx context.Context, cfg Config, con *console) func(netInfo) Report {
		calls = append(calls, "lldp")
		return func(ni netInfo) Report { return Report{UUID: "u1", BootMAC: "52:54:00:97:00:0a"} }
	}
	m.postReport = func(ctx context.Context, _ *http.Client, url string, rep Report) (Answer, error) {
		calls = append(calls, "post "+rep.UUID)
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}
	m.after = func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	var out bytes.Buffer
	con := &console{w: &out, start: time.Now()}
	if code := run(context.Background(), m, con, nil); code != 0 {
		t.Fatalf("run = %d\n%s", code, out.String())
	}
	if diff := cmp.Diff([]string{"setup", "cmdline", "modules ", "lldp", "network", "post u1", "post u1", "post u1", "reboot"}, calls); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 300 * time.Second}, waits); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if !strings.Contains(out.String(), "discovery: I am n2 (10.97.0.12): you are n2; rebooting") {
		t.Errorf("console:\n%s", out.String())
	}
}

// scriptDiscovery makes m a node (report u1) that gets answers in turn to its reports,
// recording "post" in calls for each, and never waits between them.
func scriptDiscovery(m *machine, calls *[]string, answers []Answer) {
	m.startDiscovery = func(ctx context.Context, cfg Config, con *console) func(netInfo) Report {
		return func(ni netInfo) Report { return Report{UUID: "u1", BootMAC: "52:54:00:97:00:0a"} }
	}
	m.postReport = func(ctx context.Context, _ *http.Client, url string, rep Report) (Answer, error) {
		*calls = append(*calls, "post")
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}
	m.after = func(d time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
}

func TestPostReport(t *testing.T) {
	var got Report
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if got.UUID == "refuse" {
			http.Error(w, "not from your lease", http.StatusForbidden)
			return
		}
		json.NewEncoder(w).Encode(Answer{Node: "n2", Action: "reboot"})
	}))
	defer srv.Close()
	rep := Report{UUID: "u1", BootMAC: "52:54:00:97:00:0a", NICs: []NIC{{Name: "eth0", MAC: "52:54:00:97:00:0a", LLDP: &Neighbor{SysName: "sw1", PortID: "swp3"}}}}
	a, err := postReport(context.Background(), srv.Client(), srv.URL, rep)
	if err != nil || a.Node != "n2" || a.Action != "reboot" {
		t.Errorf("postReport = %+v, %v", a, err)
	}
	if diff := cmp.Diff(rep, got); diff != "" {
		t.Errorf("report as received (-want +got):\n%s", diff)
	}
	if _, err := postReport(context.Background(), srv.Client(), srv.URL, Report{UUID: "refuse"}); err == nil || !strings.Contains(err.Error(), "not from your lease") {
		t.Errorf("postReport refused = %v, want the server's message", err)
	}
}
