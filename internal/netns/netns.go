// Package netns makes private network namespaces for tests: each gets a unique name, a
// loopback that is up, and is deleted when the test ends. Nothing in them routes anywhere
// else, so tests may use any address inside them.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	vnetns "github.com/vishvananda/netns"
)

// NS is a network namespace made by a test.
type NS struct {
	Name string
}

// New makes a namespace whose name starts with prefix (kept short: interface and namespace
// names are limited) and registers its deletion with tb.Cleanup.
func New(tb testing.TB, prefix string) *NS {
	tb.Helper()
	n := &NS{Name: "pk" + prefix + randHex(3)}
	MustIP(tb, "netns", "add", n.Name)
	tb.Cleanup(func() {
		// Kill whatever a test left running in the namespace, then delete it. The test
		// process itself may show up (one of its threads entered the namespace in Do,
		// possibly the main thread): never kill it.
		self := strconv.Itoa(os.Getpid())
		if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				if pid != self {
					_ = exec.Command("kill", "-9", pid).Run()
				}
			}
		}
		_ = exec.Command("ip", "netns", "del", n.Name).Run()
	})
	n.MustIP(tb, "link", "set", "lo", "up")
	return n
}

// MustIP runs `ip args...` in the host namespace and fails the test on error.
func MustIP(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// MustIP runs `ip -n NS args...` and fails the test on error.
func (n *NS) MustIP(tb testing.TB, args ...string) {
	tb.Helper()
	MustIP(tb, append([]string{"-n", n.Name}, args...)...)
}

// Command returns a command that runs argv inside the namespace.
func (n *NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, argv...)...)
}

// Do runs fn on an OS thread that has entered the namespace. Sockets that fn opens belong to
// the namespace for their whole life, so a server can listen in Do and serve elsewhere;
// goroutines that fn starts do not inherit the namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			errc <- fmt.Errorf("netns: current namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := vnetns.GetFromName(n.Name)
		if err != nil {
			errc <- fmt.Errorf("netns: open %s: %w", n.Name, err)
			return
		}
		defer h.Close()
		if err := vnetns.Set(h); err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			// Leave the thread locked: the runtime discards it when this goroutine ends.
			errc <- fmt.Errorf("netns: leave %s: %w (fn: %v)", n.Name, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Veth joins two namespaces with a veth pair: interface aIf in a with address aAddr
// (CIDR form, may be empty) and bIf in b with bAddr. Both ends are brought up.
func Veth(tb testing.TB, a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) {
	tb.Helper()
	tag := randHex(4)
	tmpA, tmpB := "pkv"+tag+"a", "pkv"+tag+"b"
	MustIP(tb, "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	MustIP(tb, "link", "set", tmpA, "netns", a.Name)
	MustIP(tb, "link", "set", tmpB, "netns", b.Name)
	a.MustIP(tb, "link", "set", tmpA, "name", aIf)
	b.MustIP(tb, "link", "set", tmpB, "name", bIf)
	for _, e := range []struct {
		ns        *NS
		ifc, addr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if e.addr != "" {
			e.ns.MustIP(tb, "addr", "add", e.addr, "dev", e.ifc)
		}
		e.ns.MustIP(tb, "link", "set", e.ifc, "up")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
