//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/vmtest"
)

// bootSite is a cluster made with provctl the way an admin makes one, served by provd
// inside a network namespace with a bridge, ready for VMs to net-boot from.
type bootSite struct {
	t         *testing.T
	net       *vmtest.Net
	kernel    *vmtest.Kernel
	dir       string
	db        string
	provctl   string
	provd     string
	nodeinit  string
	provdLog  *lockedBuffer
	stopProvd func()
}

// lockedBuffer collects a process's output for the test to read while it runs.
type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *lockedBuffer) add(l string) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
}

func (b *lockedBuffer) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

func newBootSite(t *testing.T, prefix netip.Prefix) *bootSite {
	t.Helper()
	s := &bootSite{t: t, dir: t.TempDir(), provdLog: &lockedBuffer{}}
	s.net = vmtest.NewNet(t, "pd", prefix)
	s.kernel = vmtest.DebianKernel(t)
	s.provctl = vmtest.BuildGo(t, "github.com/provkit/provkit/examples/provctl")
	s.provd = vmtest.BuildGo(t, "github.com/provkit/provkit/examples/provd")
	s.nodeinit = vmtest.BuildGo(t, "github.com/provkit/provkit/examples/nodeinit")
	s.db = filepath.Join(s.dir, "provkit.db")
	for _, d := range []string{"tftpboot", "install"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// pc runs provctl against the site's store and returns its output.
func (s *bootSite) pc(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.provctl, append([]string{"--db", s.db}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("provctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// busyboxRoot makes a tiny root filesystem whose /sbin/init prints a marker with the
// host name nodeinit set, waits, and powers off.
func busyboxRoot(t *testing.T, dir, marker string) {
	t.Helper()
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "var"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(vmtest.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	init := "#!/bin/sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n" +
		"echo \"" + marker + " host=$(hostname) root=$(stat -f -c %T /)\"\nsleep 20\npoweroff -f\n"
	if err := os.WriteFile(filepath.Join(dir, "sbin/init"), []byte(init), 0o755); err != nil {
		t.Fatal(err)
	}
}

// startProvd runs provd in the site's namespace and waits until it answers.
func (s *bootSite) startProvd(args ...string) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := s.net.NS.Command(ctx, append([]string{s.provd, "--db", s.db, "--log-level", "debug"}, args...)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.provdLog.add(sc.Text())
		}
	}()
	go func() { done <- cmd.Wait(); pw.Close() }()
	s.stopProvd = func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			s.t.Errorf("provd: %v", err)
		}
	}
	s.t.Cleanup(func() {
		s.stopProvd()
		if s.t.Failed() {
			s.t.Logf("provd log:\n%s", strings.Join(s.provdLog.all(), "\n"))
		}
	})
	// Wait for its HTTP server, from inside the namespace (the dial must happen on the
	// thread that entered it, so no http.Client: its transport dials elsewhere).
	addr := net.JoinHostPort(s.net.Addr.Addr().String(), "80")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		_ = s.net.NS.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "GET /healthz HTTP/1.0\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				resp.Body.Close()
				ok = resp.StatusCode == http.StatusOK
			}
			return nil
		})
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("provd did not answer http://%s/healthz within 30 s", addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitStatus polls nodestat until node reports want, and returns the states provd
// logged for it in order.
func (s *bootSite) waitStatus(node, want string, timeout time.Duration) []string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := strings.TrimSpace(s.pc("nodestat", node))
		if got == node+": "+want {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("nodestat %s = %q after %s, want %s", node, got, timeout, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var states []string
	for _, l := range s.provdLog.all() {
		if strings.Contains(l, "msg=\"node status\"") && strings.Contains(l, "node="+node+" ") {
			_, st, _ := strings.Cut(l, "state=")
			states = append(states, strings.Trim(st, "\""))
		}
	}
	return states
}
