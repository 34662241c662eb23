//go:build integration

package ha_test

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/provkit/provkit/ha"
	"github.com/provkit/provkit/ha/hatest"
	"github.com/provkit/provkit/internal/pgtest"
	"github.com/provkit/provkit/internal/testenv"
)

// freshPostgres creates a database of its own on $PROVKIT_TEST_PG (or a server of the test's
// own) and drops it after.
func freshPostgres(t testing.TB) string {
	t.Helper()
	base := hatest.Postgres(t)
	if base == "" {
		testenv.Require(t, testenv.Env("PROVKIT_TEST_PG", "a PostgreSQL server (scripts/pg-test.sh start DIR), or PostgreSQL's programs (package postgresql)"))
	}
	return pgtest.FreshDatabase(t, base, "pkha")
}

func TestPostgresLease(t *testing.T) {
	dsn := freshPostgres(t)
	ctx := context.Background()
	ttl := 300 * time.Millisecond
	a := &ha.PGLock{DSN: dsn, TTL: ttl}
	b := &ha.PGLock{DSN: dsn, TTL: ttl}
	defer a.Close()
	defer b.Close()

	la, err := a.Acquire(ctx, "a")
	if err != nil {
		t.Fatalf("a: Acquire = %v", err)
	}
	_, err = b.Acquire(ctx, "b")
	var held *ha.HeldError
	if !errors.As(err, &held) || !errors.Is(err, ha.ErrHeld) || held.Holder != "a" || held.Token != la.Token || held.Remaining <= 0 {
		t.Fatalf("b: Acquire while a holds = %v, want HeldError{a, %d}", err, la.Token)
	}
	if la, err = a.Renew(ctx, la); err != nil {
		t.Fatalf("a: Renew = %v", err)
	}
	// a stops renewing: b gets the lock once the lease has run out, with a higher token.
	time.Sleep(held.Remaining + ttl)
	lb, err := b.Acquire(ctx, "b")
	if err != nil {
		t.Fatalf("b: Acquire after a's lease ran out = %v", err)
	}
	if lb.Token <= la.Token {
		t.Errorf("b's token %d, not above a's %d", lb.Token, la.Token)
	}
	if _, err := a.Renew(ctx, la); !errors.Is(err, ha.ErrLost) {
		t.Errorf("a: Renew after b took over = %v, want ErrLost", err)
	}
	// a's Release of a lease it lost changes nothing.
	if err := a.Release(ctx, la); err != nil {
		t.Fatal(err)
	}
	if li, err := a.Info(ctx); err != nil || li.Holder != "b" || li.Token != lb.Token || li.Remaining <= 0 {
		t.Errorf("Info = %+v, %v; want b holding token %d", li, err, lb.Token)
	}
	// A waiting a wakes when b releases, and takes the lock at once.
	waited := make(chan error, 1)
	go func() { waited <- a.Wait(ctx, time.Minute) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := b.Release(ctx, lb); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("a: Wait = %v", err)
	}
	if time.Since(start) >= time.Minute {
		t.Fatalf("a's Wait ran to its maximum: the release was not announced")
	}
	la2, err := a.Acquire(ctx, "a")
	if err != nil || la2.Token != lb.Token+1 {
		t.Fatalf("a: Acquire after release = %+v, %v; want token %d", la2, err, lb.Token+1)
	}
	// An Acquire whose answer was lost can be repeated by the same holder.
	la3, err := a.Acquire(ctx, "a")
	if err != nil || la3.Token != la2.Token+1 {
		t.Errorf("a: repeated Acquire = %+v, %v", la3, err)
	}
}

// TestPostgresLeaseMutualExclusion has several contenders grab, renew, release and abandon
// the lock on a short lease, and checks that the intervals in which each believed it held the
// lock (from the grant's answer to its ValidUntil or its release) never overlap.
func TestPostgresLeaseMutualExclusion(t *testing.T) {
	dsn := freshPostgres(t)
	ttl := 150 * time.Millisecond
	type interval struct {
		holder     string
		token      int64
		start, end time.Time
	}
	var mu sync.Mutex
	var held []interval
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := string(rune('a' + i))
			l := &ha.PGLock{DSN: dsn, TTL: ttl}
			defer l.Close()
			rnd := mrand.New(mrand.NewPCG(uint64(i), 7))
			for ctx.Err() == nil {
				lease, err := l.Acquire(ctx, name)
				if err != nil {
					time.Sleep(time.Duration(rnd.IntN(20)) * time.Millisecond)
					continue
				}
				iv := interval{holder: name, token: lease.Token, start: time.Now()}
				end := lease.ValidUntil()
				for range rnd.IntN(5) {
					time.Sleep(ttl / 4)
					nl, err := l.Renew(ctx, lease)
					if err != nil {
						break
					}
					lease, end = nl, nl.ValidUntil()
				}
				if rnd.IntN(2) == 0 {
					if now := time.Now(); now.Before(end) {
						end = now // we stop believing before we release
					}
					_ = l.Release(ctx, lease)
				} else {
					time.Sleep(time.Until(end)) // abandon: the lease runs out
				}
				iv.end = end
				mu.Lock()
				held = append(held, iv)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(held, func(i, j int) bool { return held[i].token < held[j].token })
	if len(held) < 10 {
		t.Fatalf("only %d grants in the run", len(held))
	}
	for i := 1; i < len(held); i++ {
		prev, cur := held[i-1], held[i]
		if cur.token <= prev.token {
			t.Errorf("tokens not increasing: %+v then %+v", prev, cur)
		}
		if cur.start.Before(prev.end) {
			t.Errorf("%s (token %d) held from %v while %s (token %d) held until %v",
				cur.holder, cur.token, cur.start.Format(time.StampMicro), prev.holder, prev.token, prev.end.Format(time.StampMicro))
		}
	}
	t.Logf("%d grants among 6 contenders, none overlapping", len(held))
}

// BenchmarkPostgresLeaseRenew is one lease renewal on a local PostgreSQL server: the active
// node's steady cost (every TTL/8, so 4 a second with the default 2 s lease).
func BenchmarkPostgresLeaseRenew(b *testing.B) {
	dsn := freshPostgres(b)
	ctx := context.Background()
	l := &ha.PGLock{DSN: dsn, TTL: time.Minute}
	defer l.Close()
	lease, err := l.Acquire(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if lease, err = l.Renew(ctx, lease); err != nil {
			b.Fatal(err)
		}
	}
}
