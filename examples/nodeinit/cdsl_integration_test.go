//go:build integration

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestBindCDSLRoot applies the plan with real bind mounts, in a private mount namespace
// of a thread of its own: through the CDSL symbolic link /etc/hostname, each node reads
// its own copy, a node without a tree the default one.
func TestBindCDSLRoot(t *testing.T) {
	testenv.Require(t, testenv.Root())
	dir := cdslRoot(t)
	for _, tt := range []struct{ node, want string }{{"n1", "n1\n"}, {"n2", "n2\n"}, {"n9", "default\n"}} {
		got, out, err := inMountNS(func(con *console) ([]byte, error) {
			if err := bindCDSL(dir, tt.node, con); err != nil {
				return nil, err
			}
			defer unix.Unmount(filepath.Join(dir, "cdsl.local"), 0)
			return os.ReadFile(filepath.Join(dir, "etc/hostname"))
		})
		if err != nil {
			t.Fatalf("%s: %v", tt.node, err)
		}
		if string(got) != tt.want {
			t.Errorf("%s reads /etc/hostname = %q, want %q", tt.node, got, tt.want)
		}
		if !bytes.Contains(out, []byte("cdsl: /cluster/cdsl/")) {
			t.Errorf("%s: console lacks the bind:\n%s", tt.node, out)
		}
	}
	// Outside the namespace nothing is mounted: the link dangles into an empty cdsl.local.
	if _, err := os.ReadFile(filepath.Join(dir, "etc/hostname")); !os.IsNotExist(err) {
		t.Errorf("/etc/hostname outside the namespace: %v, want not found", err)
	}
}

// inMountNS runs f on a locked thread that has left the test's mount namespace for a
// private one, and returns the thread to the original namespace afterwards (Go never ends
// the main thread, should the goroutine run there).
func inMountNS(f func(con *console) ([]byte, error)) ([]byte, []byte, error) {
	type result struct {
		b   []byte
		err error
	}
	var out bytes.Buffer
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		orig, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(orig)
		defer unix.Setns(orig, unix.CLONE_NEWNS)
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- result{err: err}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- result{err: err}
			return
		}
		b, err := f(&console{w: &out, start: time.Now()})
		done <- result{b, err}
	}()
	r := <-done
	return r.b, out.Bytes(), r.err
}
