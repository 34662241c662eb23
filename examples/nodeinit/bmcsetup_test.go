package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDiscoverBMCSetup: an answer with runcmd=bmcsetup's settings has them applied once,
// the result posted next to the discovery URL, then the answer's action taken; the
// password is never printed.
func TestDiscoverBMCSetup(t *testing.T) {
	bmc := &BMCConfig{Addr: "10.98.1.2/16", Gateway: "10.98.0.254", User: "root", Password: "s3cret-pw"}
	for _, tc := range []struct {
		name    string
		result  BMCResult
		console string
	}{
		{"ok", BMCResult{OK: true, Channel: 1, UserID: 3, Steps: []string{"ipaddr 10.98.1.2"}}, "bmcsetup: done on channel 1, user 3: ipaddr 10.98.1.2"},
		{"failed", BMCResult{Error: "no in-band IPMI device"}, "bmcsetup: failed: no in-band IPMI device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			answers := []Answer{
				{Node: "n2", IP: "10.97.0.12", Action: "wait", Retry: 1, BMC: bmc},
				{Node: "n2", IP: "10.97.0.12", Action: "reboot", BMC: bmc},
			}
			m := fakeMachine("provkit.discover=http://10.97.0.1/api/v1/discover", "", &calls)
			scriptDiscovery(&m, &calls, answers)
			m.bmcSetup = func(ctx context.Context, c BMCConfig, con *console) BMCResult {
				calls = append(calls, "bmcsetup "+c.Addr+" "+c.User+" "+c.Password)
				return tc.result
			}
			var posted BMCResult
			m.postBMCResult = func(ctx context.Context, _ *http.Client, url string, res BMCResult) error {
				calls = append(calls, "result "+url)
				posted = res
				return nil
			}
			var out bytes.Buffer
			con := &console{w: &out, start: time.Now()}
			if code := run(context.Background(), m, con, nil); code != 0 {
				t.Fatalf("run = %d\n%s", code, out.String())
			}
			want := []string{"setup", "cmdline", "modules ", "network", "post", "bmcsetup 10.98.1.2/16 root s3cret-pw",
				"result http://10.97.0.1/api/v1/discover/bmcsetup", "post", "reboot"}
			if diff := cmp.Diff(want, calls); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			wantRes := tc.result
			wantRes.UUID, wantRes.Node = "u1", "n2"
			if diff := cmp.Diff(wantRes, posted); diff != "" {
				t.Errorf("posted result (-want +got):\n%s", diff)
			}
			if !strings.Contains(out.String(), tc.console) || strings.Contains(out.String(), "s3cret-pw") {
				t.Errorf("console (want %q, no password):\n%s", tc.console, out.String())
			}
		})
	}
}

func TestBMCConfigBad(t *testing.T) {
	for _, c := range []BMCConfig{
		{Addr: "10.98.1.2", User: "u", Password: "p"},
		{Addr: "10.98.1.2/16", Gateway: "gw", User: "u", Password: "p"},
	} {
		res := setupBMC(context.Background(), c, nil)
		if res.OK || res.Error == "" || strings.Contains(res.Error, "p\"") {
			t.Errorf("setupBMC(%+v) = %+v, want a failure naming the bad value", c, res)
		}
	}
}

func TestPostBMCResult(t *testing.T) {
	var got BMCResult
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/discover/bmcsetup" {
			http.NotFound(w, r)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	res := BMCResult{UUID: "u1", Node: "n2", OK: true, Channel: 1, UserID: 3, Steps: []string{"ipsrc static"}}
	if err := postBMCResult(context.Background(), srv.Client(), bmcResultURL(srv.URL+"/api/v1/discover"), res); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if err := postBMCResult(context.Background(), srv.Client(), srv.URL+"/elsewhere", res); err == nil {
		t.Error("postBMCResult to a 404: no error")
	}
}
