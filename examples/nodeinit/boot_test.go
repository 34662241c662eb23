package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/internal/testenv"
)

// statusSink is an HTTP status receiver that records reports.
type statusSink struct {
	mu     sync.Mutex
	got    []Status
	failN  int // answer 500 to the first failN requests
	served int
}

func (s *statusSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served++
	if s.served <= s.failN {
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	var st Status
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.got = append(s.got, st)
}

func (s *statusSink) states() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, st := range s.got {
		out = append(out, st.Node+" "+st.State)
	}
	return out
}

// fakeMachine boots without touching the system; steps can be made to fail.
func fakeMachine(cmdline string, failAt string, calls *[]string) machine {
	step := func(name string) error {
		*calls = append(*calls, name)
		if name == failAt {
			return errors.New(name + " broke")
		}
		return nil
	}
	return machine{
		setup:       func() error { return step("setup") },
		cmdline:     func() (string, error) { return cmdline, step("cmdline") },
		loadModules: func(extra []string, con *console) { _ = step("modules " + strings.Join(extra, ",")) },
		network: func(ctx context.Context, cfg Config, con *console) (netInfo, error) {
			return netInfo{Iface: "eth0"}, step("network")
		},
		fetchRoot: func(ctx context.Context, cfg Config, dir string, con *console) error {
			return step("fetch " + cfg.ImageURL.Host)
		},
		nfsRoot: func(ctx context.Context, cfg Config, dir string, con *console) error {
			return step("nfs " + cfg.NFS.Server)
		},
		checkInit: func(dir, init string) error { return step("check " + init) },
		bindCDSL:  func(dir, node string, con *console) error { return step("cdsl " + node) },
		switchRoot: func(dir, init string, args []string, rep *reporter, con *console) error {
			if err := step("switch " + strings.Join(args, " ")); err != nil {
				return err
			}
			// The real one does not return; the watcher reports booted.
			return rep.report(context.Background(), StateBooted)
		},
		findShell: func() string {
			*calls = append(*calls, "findShell")
			return "/bin/sh"
		},
		runShell: func(string) error { return step("shell") },
		reboot:   func() { *calls = append(*calls, "reboot") },
		deploy: func(ctx context.Context, cfg Config, ni netInfo, rep *reporter, con *console) error {
			for _, s := range []string{"partitioning", "imaging"} {
				_ = rep.report(ctx, s)
			}
			if err := step("deploy " + cfg.SyscloneURL.Host + " " + ni.Iface); err != nil {
				return err
			}
			return rep.report(ctx, StateInstalled)
		},
	}
}

func TestRun(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	tests := []struct {
		name      string
		cmdline   string
		failAt    string
		wantCalls []string
		wantState []string
		wantCode  int
		wantCon   string
	}{
		{
			name:    "stateless",
			cmdline: "imgurl=http://img/x NODE=n1 provkit.modules=e1000 provkit.status=STATUS",
			wantCalls: []string{"setup", "cmdline", "modules e1000", "network", "fetch img", "check /sbin/init",
				"switch single"},
			wantState: []string{"n1 netbooting", "n1 booting", "n1 booted"},
		},
		{
			name:      "nfs",
			cmdline:   "root=nfs:srv:/x NODE=n2 provkit.init=/init2 provkit.status=STATUS",
			wantCalls: []string{"setup", "cmdline", "modules ", "network", "nfs srv", "check /init2", "switch single"},
			wantState: []string{"n2 netbooting", "n2 booting", "n2 booted"},
		},
		{
			name:      "sysclone: deploy, report, reboot",
			cmdline:   "NODE=n7 provkit.sysclone=http://mgt/install/sysclone/images/gold provkit.status=STATUS",
			wantCalls: []string{"setup", "cmdline", "modules ", "network", "deploy mgt eth0", "reboot"},
			wantState: []string{"n7 partitioning", "n7 imaging", "n7 installed"},
		},
		{
			name:      "sysclone fails: reported, no reboot into a half-made disk",
			cmdline:   "NODE=n8 provkit.sysclone=http://mgt/x provkit.status=STATUS",
			failAt:    "deploy mgt eth0",
			wantCalls: []string{"setup", "cmdline", "modules ", "network", "deploy mgt eth0"},
			wantState: []string{"n8 partitioning", "n8 imaging", "n8 failed: deploy mgt eth0 broke"},
			wantCode:  1,
			wantCon:   "BOOT FAILED",
		},
		{
			name:      "nfs with a CDSL plan",
			cmdline:   "root=nfs:srv:/x NODE=n7 provkit.cdsl=1 provkit.status=STATUS",
			wantCalls: []string{"setup", "cmdline", "modules ", "network", "nfs srv", "cdsl n7", "check /sbin/init", "switch single"},
			wantState: []string{"n7 netbooting", "n7 booting", "n7 booted"},
		},
		{
			name:      "CDSL plan fails: reported",
			cmdline:   "imgurl=http://img/x NODE=n8 provkit.cdsl=1 provkit.status=STATUS",
			failAt:    "cdsl n8",
			wantCalls: []string{"setup", "cmdline", "modules ", "network", "fetch img", "cdsl n8"},
			wantState: []string{"n8 netbooting", "n8 failed: cdsl n8 broke"},
			wantCode:  1,
		},
		{
			name:      "no network: nothing reported, panic",
			cmdline:   "imgurl=http://img/x NODE=n3 provkit.status=STATUS",
			failAt:    "network",
			wantCalls: []string{"setup", "cmdline", "modules ", "network"},
			wantCode:  1,
			wantCon:   "BOOT FAILED: network broke",
		},
		{
			name:      "fetch fails: reported, rescue shell, reboot",
			cmdline:   "imgurl=http://img/x NODE=n4 provkit.status=STATUS provkit.rescue=1",
			failAt:    "fetch img",
			wantCalls: []string{"setup", "cmdline", "modules ", "network", "fetch img", "findShell", "shell", "reboot"},
			wantState: []string{"n4 netbooting", "n4 failed: fetch img broke"},
			wantCode:  1,
			wantCon:   "starting a rescue shell",
		},
		{
			name:      "no init in the image",
			cmdline:   "imgurl=http://img/x NODE=n5 provkit.status=STATUS",
			failAt:    "check /sbin/init",
			wantCalls: []string{"setup", "cmdline", "modules ", "network", "fetch img", "check /sbin/init"},
			wantState: []string{"n5 netbooting", "n5 failed: check /sbin/init broke"},
			wantCode:  1,
		},
		{
			name:      "bad command line still honours rescue",
			cmdline:   "NODE=n6 provkit.rescue=1",
			wantCalls: []string{"setup", "cmdline", "findShell", "shell", "reboot"},
			wantCode:  1,
			wantCon:   "no root",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &statusSink{}
			srv := httptest.NewServer(sink)
			defer srv.Close()
			var calls []string
			m := fakeMachine(strings.ReplaceAll(tt.cmdline, "STATUS", srv.URL), tt.failAt, &calls)
			var out bytes.Buffer
			con := &console{w: &out, start: time.Now()}
			code := run(context.Background(), m, con, []string{"single"})
			if code != tt.wantCode {
				t.Errorf("run = %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantState, sink.states()); diff != "" {
				t.Errorf("reported states (-want +got):\n%s", diff)
			}
			if !strings.Contains(out.String(), tt.wantCon) {
				t.Errorf("console lacks %q:\n%s", tt.wantCon, out.String())
			}
		})
	}
}

func TestReporter(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	sink := &statusSink{failN: 2}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	var out bytes.Buffer
	con := &console{w: &out, start: time.Now()}
	cfg, err := ParseCmdline("imgurl=http://x/y NODE=n1 provkit.status=" + srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	r := newReporter(cfg, con)
	r.backoff = time.Millisecond
	if err := r.report(context.Background(), StateNetbooting); err != nil {
		t.Fatalf("report after two 500s: %v", err)
	}
	if got := sink.states(); !cmp.Equal(got, []string{"n1 netbooting"}) {
		t.Errorf("states = %q", got)
	}
	// A server that always fails: bounded attempts, then an error (logged on the console).
	sink.failN = 1 << 30
	if err := r.report(context.Background(), StateBooting); err == nil || !strings.Contains(out.String(), "500") {
		t.Errorf("report to a failing server = %v; console %q", err, out.String())
	}
	// Nobody listening.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	r.url = "http://" + addr + "/status"
	if err := r.report(context.Background(), StateBooting); err == nil {
		t.Errorf("report to a closed port = nil, want an error")
	}
	// Reporting off.
	r.url = ""
	if err := r.report(context.Background(), StateBooting); err != nil {
		t.Errorf("report with no URL = %v", err)
	}
}

func TestFailState(t *testing.T) {
	got := failState(errors.New("root image http://x: HTTP 404 Not Found\nsecond line"))
	if got != "failed: root image http://x: HTTP 404 Not Found second line" {
		t.Errorf("failState = %q", got)
	}
	if long := failState(errors.New(strings.Repeat("x", 1000))); len(long) > 320 {
		t.Errorf("failState of a long error: %d bytes", len(long))
	}
}

func TestPickInterface(t *testing.T) {
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 0, b} }
	links := []linkInfo{
		{Name: "eth1", MAC: mac(2), Index: 3, Carrier: true},
		{Name: "eth0", MAC: mac(1), Index: 2, Carrier: false},
		{Name: "eth2", MAC: mac(3), Index: 4, Carrier: true},
	}
	tests := []struct {
		name string
		cfg  Config
		want string
		ok   bool
	}{
		{"first with link", Config{}, "eth1", true},
		{"BOOTIF", Config{BootIF: mac(3)}, "eth2", true},
		{"BOOTIF without link yet", Config{BootIF: mac(1)}, "eth0", true},
		{"BOOTIF absent", Config{BootIF: mac(9)}, "", false},
		{"by name", Config{Interface: "eth0"}, "eth0", true},
	}
	for _, tt := range tests {
		got, ok := pickInterface(append([]linkInfo(nil), links...), tt.cfg)
		if ok != tt.ok || got.Name != tt.want {
			t.Errorf("%s: pickInterface = %q %v, want %q %v", tt.name, got.Name, ok, tt.want, tt.ok)
		}
	}
	if _, ok := pickInterface([]linkInfo{{Name: "eth0", Carrier: false}}, Config{}); ok {
		t.Errorf("no link: picked an interface")
	}
	if d := describeWanted(Config{BootIF: mac(9)}, links); !strings.Contains(d, "52:54:00:00:00:09") || !strings.Contains(d, "eth1") {
		t.Errorf("describeWanted = %q", d)
	}
}

func TestCheck(t *testing.T) {
	var out bytes.Buffer
	if code := check(&out, "root=/dev/sda"); code != 1 || !strings.Contains(out.String(), "root=") {
		t.Errorf("check(bad) = %d, %q", code, out.String())
	}
}

func ExampleParseCmdline() {
	check(os.Stdout, "imgurl=http://10.0.0.1:80//install/netboot/rootimg.cpio.gz XCAT=10.0.0.1:3001 NODE=n1 "+
		"BOOTIF=01-52-54-00-98-01-05 provkit.status=http://10.0.0.1:8080/status")
	// Output:
	// {
	//   "bootif": "52:54:00:98:01:05",
	//   "init": "/sbin/init",
	//   "nettimeout": 60,
	//   "node": "n1",
	//   "rescue": false,
	//   "root": "stateless http://10.0.0.1:80//install/netboot/rootimg.cpio.gz",
	//   "status": "http://10.0.0.1:8080/status"
	// }
}

func TestImageChecksum(t *testing.T) {
	data := strings.Repeat("image bytes ", 1000)
	sum := sha256.Sum256([]byte(data))
	for _, tt := range []struct {
		name string
		want []byte
		ok   bool
	}{
		{"match", sum[:], true},
		{"mismatch", make([]byte, 32), false},
		{"not asked", nil, true},
	} {
		var out bytes.Buffer
		cr := &countReader{r: strings.NewReader(data), con: &console{w: &out, start: time.Now()}, next: time.Now().Add(time.Hour)}
		if tt.want != nil {
			cr.hash = sha256.New()
		}
		// The unpacker stops reading before the end (archive padding): verify reads the rest.
		io.CopyN(io.Discard, cr, 100)
		err := cr.verify(tt.want)
		if (err == nil) != tt.ok {
			t.Errorf("%s: verify = %v", tt.name, err)
		}
	}
}
