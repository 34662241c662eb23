package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tgz packs files (name -> content; mode 0755 for names ending in .sh) as a gzip'd tar.
func tgz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		mode := int64(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRunImage fetches archives from a real HTTP server and runs their runme.sh with the
// host's /bin/sh: the script runs in the unpacked directory with PROVKIT_NODE set and
// its output on the console; failures name the URL and the cause.
func TestRunImage(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh on this machine")
	}
	out := t.TempDir()
	archives := map[string][]byte{
		"/ok.tgz": tgz(t, map[string]string{
			"runme.sh": "#!/bin/sh\necho hello from runimage\ncat data.txt > " + filepath.Join(out, "marker") + "\necho $PROVKIT_NODE >> " + filepath.Join(out, "marker") + "\n",
			"data.txt": "payload\n",
		}),
		"/fails.tgz":    tgz(t, map[string]string{"runme.sh": "#!/bin/sh\necho failing\nexit 3\n"}),
		"/noscript.tgz": tgz(t, map[string]string{"other.sh": "#!/bin/sh\ntrue\n"}),
		"/garbage.tgz":  []byte("this is not an archive at all, not even close to one; it is long enough"),
		"/escape.tgz":   tgz(t, map[string]string{"../../escaped.sh": "x", "runme.sh": "#!/bin/sh\ntrue\n"}),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := archives[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	base := t.TempDir()

	var conOut bytes.Buffer
	con := &console{w: &conOut, start: time.Now()}
	if err := runImage(context.Background(), srv.Client(), srv.URL+"/ok.tgz", "/bin/sh", base, "n7", con); err != nil {
		t.Fatalf("runImage(ok.tgz) = %v\n%s", err, conOut.String())
	}
	got, err := os.ReadFile(filepath.Join(out, "marker"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("payload\nn7\n", string(got)); diff != "" {
		t.Errorf("what runme.sh wrote (-want +got):\n%s", diff)
	}
	if !strings.Contains(conOut.String(), "hello from runimage") {
		t.Errorf("runme.sh's output is not on the console:\n%s", conOut.String())
	}

	for _, tc := range []struct{ path, shell, want string }{
		{"/fails.tgz", "/bin/sh", "runme.sh of " + srv.URL + "/fails.tgz: exit status 3"},
		{"/noscript.tgz", "/bin/sh", srv.URL + "/noscript.tgz has no runme.sh"},
		{"/garbage.tgz", "/bin/sh", "unpack " + srv.URL + "/garbage.tgz"},
		{"/missing.tgz", "/bin/sh", "GET " + srv.URL + "/missing.tgz: 404 Not Found"},
		{"/ok.tgz", "", "no shell in the initramfs"},
	} {
		err := runImage(context.Background(), srv.Client(), srv.URL+tc.path, tc.shell, base, "n7", con)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("runImage(%s, shell %q) = %v, want an error containing %q", tc.path, tc.shell, err, tc.want)
		}
	}
	// An archive naming ../ never writes outside its directory.
	_ = runImage(context.Background(), srv.Client(), srv.URL+"/escape.tgz", "/bin/sh", base, "n7", con)
	if _, err := os.Stat(filepath.Join(filepath.Dir(base), "escaped.sh")); err == nil {
		t.Errorf("an archive wrote outside its directory")
	}
}

// TestDiscoverRunImages: the answer's runimage URLs run once each, in order, after
// bmcsetup and before the answer's action; a failing one does not stop the others.
func TestDiscoverRunImages(t *testing.T) {
	var calls []string
	answers := []Answer{
		{Node: "n2", IP: "10.97.0.12", Action: "wait", Retry: 1, BMC: &BMCConfig{Addr: "10.98.1.2/16", User: "u", Password: "p"},
			RunImages: []string{"http://10.97.0.1/a.tgz", "http://10.97.0.1/b.tgz"}},
		{Node: "n2", IP: "10.97.0.12", Action: "reboot", RunImages: []string{"http://10.97.0.1/a.tgz", "http://10.97.0.1/b.tgz"}},
	}
	m := fakeMachine("provkit.discover=http://10.97.0.1/api/v1/discover", "", &calls)
	scriptDiscovery(&m, &calls, answers)
	m.bmcSetup = func(ctx context.Context, c BMCConfig, con *console) BMCResult {
		calls = append(calls, "bmcsetup")
		return BMCResult{OK: true}
	}
	m.postBMCResult = func(ctx context.Context, _ *http.Client, url string, res BMCResult) error { return nil }
	m.runImage = func(ctx context.Context, _ *http.Client, url, node string, con *console) error {
		calls = append(calls, "runimage "+url+" "+node)
		if strings.HasSuffix(url, "a.tgz") {
			return os.ErrPermission
		}
		return nil
	}
	var out bytes.Buffer
	con := &console{w: &out, start: time.Now()}
	if code := run(context.Background(), m, con, nil); code != 0 {
		t.Fatalf("run = %d\n%s", code, out.String())
	}
	want := []string{"setup", "cmdline", "modules ", "network", "post", "bmcsetup",
		"runimage http://10.97.0.1/a.tgz n2", "runimage http://10.97.0.1/b.tgz n2", "post", "reboot"}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if !strings.Contains(out.String(), "warning: runimage: permission denied") || !strings.Contains(out.String(), "runimage: http://10.97.0.1/b.tgz: done") {
		t.Errorf("console:\n%s", out.String())
	}
}
