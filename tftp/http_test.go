package tftp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"testing/fstest"
	"time"

	"github.com/provkit/provkit/tftp"
	"github.com/provkit/provkit/tftp/bootconf"

	"github.com/provkit/provkit/internal/testenv"
)

func TestHTTPHandler(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	root, files := bootRoot(t)
	rec := &recorder{}
	srv := httptest.NewServer(http.StripPrefix("/tftpboot", &tftp.HTTPHandler{Files: openDir(t, root), OnTransfer: rec.add}))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()

	do := func(method, path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		must(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		must(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp, body
	}
	big := files["big"]
	resp, body := do("GET", "/tftpboot/big", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, big) {
		t.Fatalf("GET big: %d, %d bytes; want 200 and %d bytes", resp.StatusCode, len(body), len(big))
	}
	lastMod := resp.Header.Get("Last-Modified")
	if lastMod == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("GET big headers %v: want Last-Modified and Accept-Ranges", resp.Header)
	}
	resp, body = do("GET", "/tftpboot/big", map[string]string{"Range": "bytes=1000-1999"})
	if resp.StatusCode != 206 || !bytes.Equal(body, big[1000:2000]) {
		t.Errorf("GET Range: %d, %d bytes; want 206 and bytes 1000-1999", resp.StatusCode, len(body))
	}
	resp, body = do("GET", "/tftpboot/big", map[string]string{"Range": "bytes=-10"})
	if resp.StatusCode != 206 || !bytes.Equal(body, big[len(big)-10:]) {
		t.Errorf("GET suffix Range: %d, %q", resp.StatusCode, body)
	}
	resp, _ = do("GET", "/tftpboot/big", map[string]string{"If-Modified-Since": lastMod})
	if resp.StatusCode != 304 {
		t.Errorf("GET If-Modified-Since: %d, want 304", resp.StatusCode)
	}
	resp, body = do("HEAD", "/tftpboot/small", nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(files["small"])) {
		t.Errorf("HEAD small: %d, body %d, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	resp, _ = do("POST", "/tftpboot/small", nil)
	if resp.StatusCode != 405 {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	// The traversal corpus over HTTP: nothing outside the root, never a 200.
	for path, code := range map[string]int{
		"/tftpboot/missing":             404,
		"/tftpboot/escape":              403,
		"/tftpboot/escape-abs":          403,
		"/tftpboot/passwd":              403,
		"/tftpboot/up/secret":           403,
		"/tftpboot/fifo":                404,
		"/tftpboot/xcat":                404,
		"/tftpboot/..%2fsecret":         400,
		"/tftpboot/%2e%2e/secret":       400,
		"/tftpboot/a/%2e%2e/%2e%2e/etc": 400,
		"/tftpboot/a%00b":               400,
	} {
		resp, body := do("GET", path, nil)
		if resp.StatusCode != code || bytes.Contains(body, []byte("SECRET")) {
			t.Errorf("GET %s: %d %q, want %d", path, resp.StatusCode, body, code)
		}
	}
	ts := rec.all()
	if len(ts) == 0 || ts[0].Proto != "http" || ts[0].Bytes != int64(len(big)) || ts[0].Err != nil {
		t.Errorf("first record %+v: want http, %d bytes, no error", ts[0], len(big))
	}
}

func TestOverlayAndBootConfigs(t *testing.T) {
	static := tftp.FS(fstest.MapFS{
		"pxelinux.0":           {Data: []byte("PXELINUX")},
		"pxelinux.cfg/default": {Data: []byte("DEFAULT local\n")},
		"dir/file":             {Data: []byte("x")},
	})
	nodes := tftp.NodesFunc(func(_ context.Context, q bootconf.Query) (bootconf.Node, error) {
		if q.Name == "n1" || q.IP == netip.MustParseAddr("10.92.0.11") {
			return bootconf.Node{Name: "n1", State: "boot"}, nil
		}
		return bootconf.Node{}, fs.ErrNotExist
	})
	files := tftp.Overlay(&tftp.BootConfigs{Nodes: nodes}, static)
	tests := []struct {
		name string
		want string
		err  error
	}{
		{"pxelinux.0", "PXELINUX", nil},
		{"pxelinux.cfg/default", "DEFAULT local\n", nil},
		{"pxelinux.cfg/n1", "#boot\nDEFAULT xCAT\nLABEL xCAT\nLOCALBOOT 0\n", nil},
		{"pxelinux.cfg/0A5C000B", "#boot\nDEFAULT xCAT\nLABEL xCAT\nLOCALBOOT 0\n", nil},
		{"xcat/xnba/nodes/n1.uefi", "#!gpxe\n#boot\nexit\n", nil},
		{"pxelinux.cfg/n2", "", fs.ErrNotExist},
		{"dir", "", fs.ErrNotExist},
		{"nothing", "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		f, err := files.Open(context.Background(), netip.MustParseAddr("10.92.0.11"), tt.name)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Open(%q) error %v, want %v", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open(%q): %v", tt.name, err)
		}
		got, _ := io.ReadAll(f)
		fi, _ := f.Stat()
		f.Close()
		if string(got) != tt.want || fi.Size() != int64(len(tt.want)) {
			t.Errorf("Open(%q) = %q (size %d), want %q", tt.name, got, fi.Size(), tt.want)
		}
	}
}

func TestNewFile(t *testing.T) {
	mod := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f := tftp.NewFile("n", mod, []byte("abc"))
	fi, err := f.Stat()
	if err != nil || fi.Size() != 3 || !fi.ModTime().Equal(mod) || !fi.Mode().IsRegular() || fi.Name() != "n" {
		t.Errorf("NewFile Stat = %v, %v", fi, err)
	}
	if _, err := f.Seek(1, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(f); string(b) != "bc" {
		t.Errorf("read after Seek(1) = %q", b)
	}
}
