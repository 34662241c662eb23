package ha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitGone waits until pid no longer runs.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcessStartStop(t *testing.T) {
	ctx := context.Background()
	p := &Process{ServiceName: "sleeper", Path: "/bin/sleep", Args: []string{"100"}, StopTimeout: 5 * time.Second}
	if err := p.Healthy(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Healthy before Start = %v, want ErrNotRunning", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := p.cmd.Process.Pid
	if err := p.Healthy(ctx); err == nil || errors.Is(err, ErrNotRunning) {
		t.Fatalf("Healthy at once = %v, want \"not yet\" (no health check: it must run a while)", err)
	}
	time.Sleep(settleTime)
	if err := p.Healthy(ctx); err != nil {
		t.Fatalf("Healthy = %v", err)
	}
	if err := p.Start(ctx); err != nil || p.cmd.Process.Pid != pid {
		t.Fatalf("second Start = %v, pid %d, want the same process %d", err, p.cmd.Process.Pid, pid)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if err := p.Healthy(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Healthy after Stop = %v, want ErrNotRunning", err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v", err)
	}
}

func TestProcessExits(t *testing.T) {
	ctx := context.Background()
	p := &Process{ServiceName: "false", Path: "/bin/false"}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := p.Healthy(ctx)
		if errors.Is(err, ErrNotRunning) {
			if !strings.Contains(err.Error(), "exit status 1") {
				t.Errorf("Healthy = %v, want the exit status", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Healthy = %v long after /bin/false exited", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProcessStopGroup: Stop reaches the program's children, and a program that ignores
// its stop signal gets SIGKILL.
func TestProcessStopGroup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	// A shell that ignores SIGTERM and runs a child that records its pid.
	p := &Process{ServiceName: "stubborn", Path: "/bin/sh",
		Args:        []string{"-c", `trap "" TERM; sleep 100 & echo $! > ` + pidFile + `; wait; wait`},
		StopTimeout: 200 * time.Millisecond}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	child := 0
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 {
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("the child never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	leader := p.cmd.Process.Pid
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, leader)
	waitGone(t, child)
}

// TestProcessDetached: with a pid file, another Process value (another provctl run) finds
// the program, sees it healthy and stops it.
func TestProcessDetached(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	spec := func() *Process {
		return &Process{ServiceName: "d", Path: "/bin/sleep", Args: []string{"100"}, PIDFile: filepath.Join(dir, "d.pid"), LogFile: filepath.Join(dir, "d.log")}
	}
	first := spec()
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := first.cmd.Process.Pid
	second := spec()
	if err := second.Healthy(ctx); err != nil {
		t.Fatalf("Healthy from another value = %v", err)
	}
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if second.cmd != nil {
		t.Fatalf("Start from another value started a second program")
	}
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if _, err := os.Stat(second.PIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left: %v", err)
	}
	if err := second.Healthy(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Healthy after Stop = %v", err)
	}
}

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	self := os.Getpid()
	start, err := procStart(self)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, content string
		want          int
		wantErr       bool
	}{
		{"live", fmt.Sprintf("%d %d\n", self, start), self, false},
		{"reused pid", fmt.Sprintf("%d %d\n", self, start+1), 0, false},
		{"garbage", "hello", 0, true},
		{"negative", "-1 2", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readPIDFile(p)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("readPIDFile(%q) = %d, %v; want %d, error %v", tt.content, got, err, tt.want, tt.wantErr)
			}
		})
	}
	if got, err := readPIDFile(filepath.Join(dir, "absent")); got != 0 || err != nil {
		t.Errorf("readPIDFile(absent) = %d, %v", got, err)
	}
}

func TestParseProcStat(t *testing.T) {
	line := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	state, start, ok := parseProcStat(line)
	if !ok || state != 'S' || start != 987654 {
		t.Errorf("parseProcStat = %c, %d, %v; want S, 987654", state, start, ok)
	}
	if _, _, ok := parseProcStat("1234 (x) S 1"); ok {
		t.Error("parseProcStat accepted a short line")
	}
}

func TestInProcess(t *testing.T) {
	ctx := context.Background()
	started := make(chan struct{})
	s := &InProcess{ServiceName: "srv", Serve: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return nil
	}}
	if err := s.Healthy(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Healthy before Start = %v", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := s.Healthy(ctx); err != nil {
		t.Fatalf("Healthy = %v", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Healthy after Stop = %v", err)
	}
	failing := &InProcess{ServiceName: "bad", Serve: func(context.Context) error { return errors.New("port in use") }}
	if err := failing.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := failing.Healthy(ctx)
		if errors.Is(err, ErrNotRunning) && strings.Contains(err.Error(), "port in use") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Healthy = %v, want ErrNotRunning with Serve's error", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHealthChecks(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	if err := HTTPCheck(srv.URL + "/healthz")(ctx); err != nil {
		t.Errorf("HTTPCheck(ok) = %v", err)
	}
	if err := HTTPCheck(srv.URL + "/nope")(ctx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("HTTPCheck(404) = %v", err)
	}
	if err := TCPCheck(srv.Listener.Addr().String())(ctx); err != nil {
		t.Errorf("TCPCheck(open) = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if err := TCPCheck(closed)(ctx); err == nil {
		t.Errorf("TCPCheck(closed port) = nil")
	}
}

func TestUnit(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "argv")
	state := filepath.Join(dir, "state")
	fake := filepath.Join(dir, "systemctl")
	// A systemctl that logs its arguments and reads the unit's state from a file.
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\ncase $1 in\nis-active) s=$(cat " + state + "); echo $s; [ \"$s\" = active ];;\n" +
		"start) [ -f " + filepath.Join(dir, "fail") + " ] && { echo 'Job failed' >&2; exit 1; }; echo active > " + state + ";;\n" +
		"stop) echo inactive > " + state + ";;\nesac\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u := &Unit{ServiceName: "database", Unit: "postgresql", Systemctl: fake}
	for _, st := range []struct {
		state string
		want  error
		yet   bool
	}{{"inactive", ErrNotRunning, false}, {"failed", ErrNotRunning, false}, {"activating", nil, true}} {
		if err := os.WriteFile(state, []byte(st.state), 0o644); err != nil {
			t.Fatal(err)
		}
		err := u.Healthy(ctx)
		if st.want != nil && !errors.Is(err, st.want) || st.yet && (err == nil || errors.Is(err, ErrNotRunning)) {
			t.Errorf("Healthy with the unit %s = %v", st.state, err)
		}
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Healthy(ctx); err != nil {
		t.Errorf("Healthy after start = %v", err)
	}
	if err := u.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err == nil || !strings.Contains(err.Error(), "Job failed") {
		t.Errorf("failing start = %v, want systemctl's message", err)
	}
	b, _ := os.ReadFile(log)
	want := "is-active -- postgresql\nis-active -- postgresql\nis-active -- postgresql\nstart -- postgresql\nis-active -- postgresql\nstop -- postgresql\nstart -- postgresql\n"
	if string(b) != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", b, want)
	}
}
