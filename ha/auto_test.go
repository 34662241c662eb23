package ha_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provkit/provkit/ha"
	"github.com/provkit/provkit/ha/hatest"
)

// autoNode is one management node of an automatic-mode test.
type autoNode struct {
	t      *testing.T
	name   string
	net    *hatest.Network
	svcs   []*hatest.Service
	m      *ha.Manager
	auto   *ha.Auto
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []ha.Event
}

func newAutoNode(t *testing.T, name string, seg *hatest.Segment, lock ha.Lock, shared string) *autoNode {
	t.Helper()
	n := &autoNode{t: t, name: name, net: seg.Host(name)}
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	write(t, hosts, "127.0.0.1 localhost\n")
	local := filepath.Join(dir, "tftpboot")
	write(t, filepath.Join(local, "local-only"), name)
	var svcs []ha.Service
	for _, s := range []string{"database", "provd"} {
		svc := &hatest.Service{ServiceName: s}
		n.svcs = append(n.svcs, svc)
		svcs = append(svcs, svc)
	}
	n.m = &ha.Manager{
		Interface: "eth0", VIP: vip, SharedDir: shared, Hostname: "mn", HostsFile: hosts,
		Links:    []ha.Link{{Local: local, Shared: filepath.Join(shared, "tftpboot")}},
		Services: svcs, StateDir: filepath.Join(dir, "state"),
		RetryDelay: 10 * time.Millisecond, HealthTimeout: time.Second, StopTimeout: 100 * time.Millisecond,
		Network: n.net, Host: &hatest.Host{Name: name},
	}
	n.auto = &ha.Auto{Manager: n.m, Lock: lock, Name: name, PollInterval: 20 * time.Millisecond,
		HealthInterval: 50 * time.Millisecond, OnEvent: n.record}
	return n
}

func (n *autoNode) record(e ha.Event) {
	n.mu.Lock()
	n.events = append(n.events, e)
	n.mu.Unlock()
}

func (n *autoNode) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- n.auto.Run(ctx) }()
}

func (n *autoNode) stop() {
	n.t.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			n.t.Errorf("%s: Run = %v", n.name, err)
		}
	case <-time.After(10 * time.Second):
		n.t.Fatalf("%s: Run did not return", n.name)
	}
}

// waitEvent waits for the n-th event of kind (counting from 1) and returns it.
func (n *autoNode) waitEvent(kind ha.EventKind, nth int) ha.Event {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.mu.Lock()
		seen := 0
		for _, e := range n.events {
			if e.Kind == kind {
				if seen++; seen == nth {
					n.mu.Unlock()
					return e
				}
			}
		}
		n.mu.Unlock()
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: no %s event #%d; events: %v", n.name, kind, nth, n.eventList())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *autoNode) eventList() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, e := range n.events {
		out = append(out, e.String())
	}
	return out
}

func (n *autoNode) running() []string {
	var r []string
	for _, s := range n.svcs {
		if s.Running() {
			r = append(r, s.Name())
		}
	}
	return r
}

func newAutoPair(t *testing.T) (a, b *autoNode, seg *hatest.Segment, lock *hatest.Lock) {
	seg = &hatest.Segment{}
	lock = &hatest.Lock{TTL: 2 * time.Second}
	shared := filepath.Join(t.TempDir(), "shared")
	a = newAutoNode(t, "a", seg, lock, shared)
	b = newAutoNode(t, "b", seg, lock, shared)
	if err := a.m.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a, b, seg, lock
}

func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAutoHandOver: a node that stops releases the lock, and the standby takes over at once.
func TestAutoHandOver(t *testing.T) {
	before := runtime.NumGoroutine()
	a, b, seg, _ := newAutoPair(t)
	a.start()
	a.waitEvent(ha.EventActive, 1)
	b.start()
	b.waitEvent(ha.EventStandby, 1)
	if !a.net.Has(vip.Addr()) || b.net.Has(vip.Addr()) {
		t.Fatalf("VIP on a: %v, on b: %v; want a only", a.net.Has(vip.Addr()), b.net.Has(vip.Addr()))
	}
	a.stop()
	b.waitEvent(ha.EventActive, 1)
	if a.net.Has(vip.Addr()) || len(a.running()) > 0 {
		t.Errorf("stopped node a still has the VIP (%v) or services %v", a.net.Has(vip.Addr()), a.running())
	}
	if !b.net.Has(vip.Addr()) || len(b.running()) != 2 {
		t.Errorf("node b: VIP %v, services %v", b.net.Has(vip.Addr()), b.running())
	}
	rel, acq := a.waitEvent(ha.EventReleased, 1), b.waitEvent(ha.EventAcquired, 1)
	if !rel.Time.Before(acq.Time) {
		t.Errorf("b acquired at %v, before a released at %v", acq.Time, rel.Time)
	}
	b.stop()
	if c := seg.Conflicts(); len(c) > 0 {
		t.Errorf("split brain: %v", c)
	}
	checkGoroutines(t, before)
}

// TestAutoFenceOrdering is the proof that an active node that loses the lock deactivates
// itself before another node can activate: node a is cut off from the lock; it must have
// removed its VIP and stopped its services before the lock grants b's lease.
func TestAutoFenceOrdering(t *testing.T) {
	a, b, seg, lock := newAutoPair(t)
	a.start()
	a.waitEvent(ha.EventActive, 1)
	b.start()
	b.waitEvent(ha.EventStandby, 1)
	lock.Cut("a/")
	fenced := a.waitEvent(ha.EventFenced, 1)
	activeB := b.waitEvent(ha.EventActive, 1)
	grants := lock.Grants()
	last := grants[len(grants)-1]
	if last.Holder[:2] != "b/" {
		t.Fatalf("last grant %+v, want b's", last)
	}
	lost := a.waitEvent(ha.EventLost, 1)
	if !lost.Time.Before(fenced.Time) || !fenced.Time.Before(last.At) || !last.At.Before(activeB.Time) {
		t.Errorf("order: a lost %v, a fenced %v, b granted %v, b active %v; want that order",
			lost.Time.Format(time.StampMicro), fenced.Time.Format(time.StampMicro), last.At.Format(time.StampMicro), activeB.Time.Format(time.StampMicro))
	}
	if a.net.Has(vip.Addr()) || len(a.running()) > 0 {
		t.Errorf("fenced node a still has the VIP (%v) or services %v", a.net.Has(vip.Addr()), a.running())
	}
	if c := seg.Conflicts(); len(c) > 0 {
		t.Errorf("split brain: %v", c)
	}
	// When a can reach the lock again, it stays a standby.
	lock.Heal("a/")
	a.waitEvent(ha.EventStandby, 2)
	a.stop()
	b.stop()
	t.Logf("a lost the lease at +0; fenced +%s; b granted +%s; b active +%s",
		fenced.Time.Sub(lost.Time).Round(time.Millisecond), last.At.Sub(lost.Time).Round(time.Millisecond), activeB.Time.Sub(lost.Time).Round(time.Millisecond))
}

// TestAutoRestartsService: a service that dies is restarted by the active node.
func TestAutoRestartsService(t *testing.T) {
	a, _, _, _ := newAutoPair(t)
	a.start()
	a.waitEvent(ha.EventActive, 1)
	a.svcs[1].Kill()
	e := a.waitEvent(ha.EventRestarted, 1)
	if e.Step != "service provd" || !a.svcs[1].Running() {
		t.Errorf("restarted %q, provd running %v", e.Step, a.svcs[1].Running())
	}
	a.stop()
}

// TestAutoGivesUp: an active node whose service cannot be brought back deactivates and
// releases the lock, and the standby takes over.
func TestAutoGivesUp(t *testing.T) {
	a, b, seg, _ := newAutoPair(t)
	a.start()
	a.waitEvent(ha.EventActive, 1)
	b.start()
	b.waitEvent(ha.EventStandby, 1)
	a.svcs[0].StartErr = fmt.Errorf("disk full")
	a.svcs[0].Kill()
	a.waitEvent(ha.EventGaveUp, 1)
	b.waitEvent(ha.EventActive, 1)
	if a.net.Has(vip.Addr()) || len(a.running()) > 0 {
		t.Errorf("node a gave up but has the VIP (%v) or services %v", a.net.Has(vip.Addr()), a.running())
	}
	a.stop()
	b.stop()
	if c := seg.Conflicts(); len(c) > 0 {
		t.Errorf("split brain: %v", c)
	}
}

// TestAutoLeaseTooShort: a PostgreSQL lease too short for the VIP lifetime is refused before
// anything is touched: no connection, no address, no service.
func TestAutoLeaseTooShort(t *testing.T) {
	tests := []struct {
		ttl, life time.Duration
	}{
		{time.Second, time.Second},
		{1600 * time.Millisecond, time.Second},
		{2 * time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.ttl, "/", tt.life), func(t *testing.T) {
			seg := &hatest.Segment{}
			// Nothing listens on port 1: a connection attempt would fail differently.
			lock := &ha.PGLock{DSN: "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable", TTL: tt.ttl}
			n := newAutoNode(t, "mn1", seg, lock, t.TempDir())
			n.auto.VIPLifetime = tt.life
			err := n.auto.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("lease TTL %s too short", tt.ttl)) {
				t.Fatalf("Run with a %s lease and a %s VIP lifetime: %v, want a lease-too-short error", tt.ttl, tt.life, err)
			}
			if log := n.net.Log(); len(log) > 0 {
				t.Errorf("network calls: %v, want none", log)
			}
			for _, s := range n.svcs {
				if s.Running() {
					t.Errorf("service %s runs", s.ServiceName)
				}
			}
		})
	}
}
