package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
	"github.com/provkit/provkit/examples/internal/glue"
)

// fakeLeases is the DHCP server's lease table as discovery sees it.
type fakeLeases struct {
	leases []dhcp.Lease
	forgot []string
}

func (f *fakeLeases) Leases() ([]dhcp.Lease, error) { return f.leases, nil }
func (f *fakeLeases) ForgetLease(mac net.HardwareAddr) (bool, error) {
	f.forgot = append(f.forgot, mac.String())
	return true, nil
}

func TestDiscoverHandler(t *testing.T) {
	ctx := context.Background()
	store, err := cluster.Open(ctx, filepath.Join(t.TempDir(), "provkit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Update(ctx, func(tx cluster.Tx) error {
		for table, rows := range map[string][]cluster.Row{
			"nodelist":   {{"node": "n1", "groups": "compute"}, {"node": "n2", "groups": "compute"}},
			"hosts":      {{"node": "compute", "ip": `|n(\d+)|10.97.9.($1+10)|`}},
			"chain":      {{"node": "compute", "chain": "osimage=img"}},
			"osimage":    {{"imagename": "img", "osvers": "b", "osarch": "x86_64", "profile": "c", "provmethod": "netboot"}},
			"linuximage": {{"imagename": "img", "rootimgdir": "/install/img"}},
		} {
			if err := tx.Put(table, rows...); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	vs, err := newViews(ctx, store, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	leases := &fakeLeases{leases: []dhcp.Lease{
		{IP: netip.MustParseAddr("10.97.9.200"), MAC: mac("52:54:00:97:09:01")},
		{IP: netip.MustParseAddr("10.97.9.201"), MAC: mac("52:54:00:97:09:02")},
	}}
	h := &discoverHandler{store: store, views: vs, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics(), now: time.Now}
	var lt leaseTable = leases
	h.dhcp.Store(&lt)

	post := func(from, body string) (int, glue.DiscoveryAnswer, string) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/api/v1/discover", strings.NewReader(body))
		r.RemoteAddr = from + ":40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var a glue.DiscoveryAnswer
		if w.Code == http.StatusOK {
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
				t.Fatalf("answer %q: %v", w.Body.String(), err)
			}
		}
		return w.Code, a, w.Body.String()
	}
	report := func(mac string) string {
		return `{"uuid":"u-` + strings.ReplaceAll(mac, ":", "") + `","bootmac":"` + mac + `","nics":[{"name":"eth0","mac":"` + mac + `"}]}`
	}

	// Not matched yet: wait and ask again.
	code, a, body := post("10.97.9.200", report("52:54:00:97:09:01"))
	if code != http.StatusOK || a.Action != "wait" || a.Retry != discoverRetry || !strings.Contains(a.Message, "nodediscoverstart") {
		t.Errorf("before nodediscoverstart: %d %+v %s", code, a, body)
	}
	if _, err := cluster.StartSeqDiscovery(ctx, store, cluster.SeqParams{Noderange: "n[1-2]"}); err != nil {
		t.Fatal(err)
	}
	// Somebody else's address, or no lease at all: refused, nothing recorded.
	if code, _, body := post("10.97.9.201", report("52:54:00:97:09:01")); code != http.StatusForbidden || !strings.Contains(body, "is leased to 52:54:00:97:09:02") {
		t.Errorf("report from another MAC's address: %d %s", code, body)
	}
	if code, _, body := post("10.97.9.222", report("52:54:00:97:09:01")); code != http.StatusForbidden || !strings.Contains(body, "no DHCP lease") {
		t.Errorf("report from an address without a lease: %d %s", code, body)
	}
	for _, bad := range []string{`{`, `{"uuid":"x","bootmac":"nope"}`, `{"uuid":"x","bootmac":"52:54:00:97:09:01","nics":[{"name":"a,b","mac":"52:54:00:97:09:01"}]}`} {
		if code, _, body := post("10.97.9.200", bad); code != http.StatusBadRequest {
			t.Errorf("report %s: %d %s, want 400", bad, code, body)
		}
	}
	code, a, body = post("10.97.9.200", report("52:54:00:97:09:01"))
	if code != http.StatusOK || a.Node != "n1" || a.IP != "10.97.9.11" || a.Action != "reboot" {
		t.Fatalf("discovery: %d %+v %s", code, a, body)
	}
	if len(leases.forgot) != 1 || leases.forgot[0] != "52:54:00:97:09:01" {
		t.Errorf("leases forgotten: %v, want the node's discovery lease", leases.forgot)
	}
	// The answer is served at once: the view already knows n1's MAC.
	if n, err := vs.Current().NodeByMAC(mac("52:54:00:97:09:01")); err != nil || n.Name != "n1" {
		t.Errorf("view after discovery: %v, %v", n, err)
	}
	if r := httptest.NewRecorder(); true {
		h.ServeHTTP(r, httptest.NewRequest(http.MethodGet, "/api/v1/discover", nil))
		if r.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", r.Code)
		}
	}
}
