package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/examples/internal/glue"
)

// TestDiscoverBMCSetupAnswer: with runcmd=bmcsetup in the chain the answer carries the
// BMC's settings (and only there the password: provd's log never has it); the node's
// result is logged.
func TestDiscoverBMCSetupAnswer(t *testing.T) {
	ctx := context.Background()
	store, err := cluster.Open(ctx, filepath.Join(t.TempDir(), "provkit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Update(ctx, func(tx cluster.Tx) error {
		for table, rows := range map[string][]cluster.Row{
			"nodelist":   {{"node": "n1", "groups": "compute"}},
			"hosts":      {{"node": "compute", "ip": `|n(\d+)|10.97.9.($1+10)|`}},
			"networks":   {{"netname": "bmc", "net": "10.98.0.0", "mask": "255.255.0.0", "gateway": "10.98.0.254"}},
			"ipmi":       {{"node": "compute", "bmc": `|n(\d+)|10.98.1.($1)|`}},
			"passwd":     {{"key": "ipmi", "username": "root", "password": "s3cret-pw"}},
			"chain":      {{"node": "compute", "chain": "runcmd=bmcsetup,osimage=img"}},
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
	if _, err := cluster.StartSeqDiscovery(ctx, store, cluster.SeqParams{Noderange: "n1"}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	vs, err := newViews(ctx, store, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h := &discoverHandler{store: store, views: vs, log: log, metrics: newMetrics(), now: time.Now}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/discover", strings.NewReader(`{"uuid":"u1","bootmac":"52:54:00:97:09:01"}`))
	r.RemoteAddr = "127.0.0.1:40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var a glue.DiscoveryAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %d %q: %v", w.Code, w.Body.String(), err)
	}
	want := &glue.DiscoveryBMC{Addr: "10.98.1.1/16", Gateway: "10.98.0.254", User: "root", Password: "s3cret-pw"}
	if diff := gocmp.Diff(want, a.BMC); diff != "" || a.Action != "reboot" {
		t.Errorf("answer %+v; BMC (-want +got):\n%s", a, diff)
	}

	rh := &bmcResultHandler{store: store, views: vs, log: log, metrics: newMetrics()}
	for _, tc := range []struct {
		body string
		code int
		log  string
		from string // 127.0.0.1 if empty
	}{
		{`{"uuid":"u1","node":"n1","ok":true,"channel":1,"userid":3,"steps":["ipsrc static","ipaddr 10.98.1.1"]}`, http.StatusNoContent,
			`msg="bmcsetup done" node=n1 uuid=u1 ip=127.0.0.1 channel=1 user=3 steps="ipsrc static, ipaddr 10.98.1.1"`, ""},
		{`{"uuid":"u1","node":"n1","ok":false,"error":"no in-band IPMI device"}`, http.StatusNoContent,
			`msg="bmcsetup failed" node=n1 uuid=u1 ip=127.0.0.1 err="no in-band IPMI device"`, ""},
		{`{"uuid":"u1","node":"nobody","ok":true}`, http.StatusBadRequest, "", ""},
		{`{`, http.StatusBadRequest, "", ""},
		{`{"uuid":"u-other","node":"n1","ok":true}`, http.StatusBadRequest, "", ""},
		{`{"uuid":"u1","node":"n1","ok":true}`, http.StatusForbidden, "", "10.97.9.66"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/discover/bmcsetup", strings.NewReader(tc.body))
		r.RemoteAddr = cmp.Or(tc.from, "127.0.0.1") + ":40000"
		w := httptest.NewRecorder()
		rh.ServeHTTP(w, r)
		if w.Code != tc.code || !strings.Contains(logs.String(), tc.log) {
			t.Errorf("result %s: %d, want %d with log %q; log:\n%s", tc.body, w.Code, tc.code, tc.log, logs.String())
		}
	}
	if !strings.Contains(logs.String(), `msg="discovery: bmcsetup sent" node=n1 bmc="ip 10.98.1.1/16 gateway 10.98.0.254 user root"`) || strings.Contains(logs.String(), "s3cret-pw") {
		t.Errorf("provd's log (want the settings, never the password):\n%s", logs.String())
	}
}
