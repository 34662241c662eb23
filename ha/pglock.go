package ha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGLock is a Lock kept in the shared PostgreSQL store: a row of table provkit_ha_lease per
// lock, holding the holder, a fencing token and an expiry on the server's clock. Because the
// expiry is data, not a session, the lock survives reconnections, and a holder cut off from
// the store knows how long its lease still protects it (an advisory lock alone cannot say:
// the server releases it when it notices the session is gone, at a time the holder does not
// know). The table is created on first use, under a transaction-scoped advisory lock so that
// nodes starting together do not race.
//
// A release is announced with NOTIFY provkit_ha, so a waiting standby (Wait) takes over at
// once instead of at its next poll.
//
// The guarantee assumes the server's clock does not jump forward by more than the margin
// between the lease's TTL and the holder's fencing; run NTP in slew mode.
type PGLock struct {
	// DSN is the store's postgres:// URL.
	DSN string
	// Name names the lock (one row). If empty, "provkit".
	Name string
	// TTL is how long a lease runs from each renewal. If zero, 2 s.
	TTL time.Duration
	// Logger receives connection errors. If nil, nothing is logged.
	Logger *slog.Logger

	mu   sync.Mutex
	conn *pgx.Conn
}

var _ Waiter = (*PGLock)(nil)

const (
	pgChannel = "provkit_ha"
	// pgSetupKey is the advisory-lock key that serializes creating the table.
	pgSetupKey = 0x70726f766861 // "provha"
)

func (l *PGLock) name() string {
	if l.Name == "" {
		return "provkit"
	}
	return l.Name
}

func (l *PGLock) ttl() time.Duration {
	if l.TTL <= 0 {
		return 2 * time.Second
	}
	return l.TTL
}

func (l *PGLock) log() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l.Logger
}

// connLocked returns the connection, connecting (and creating the table) when needed.
func (l *PGLock) connLocked(ctx context.Context) (*pgx.Conn, error) {
	if l.conn != nil && !l.conn.IsClosed() {
		return l.conn, nil
	}
	l.conn = nil
	if l.DSN == "" {
		return nil, errors.New("lock: no PostgreSQL DSN")
	}
	c, err := pgx.Connect(ctx, l.DSN)
	if err != nil {
		return nil, fmt.Errorf("lock: connect to %s: %w", redactDSN(l.DSN), err)
	}
	if err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(pgSetupKey)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS provkit_ha_lease (
	name text PRIMARY KEY,
	holder text NOT NULL DEFAULT '',
	token bigint NOT NULL DEFAULT 0,
	expires timestamptz NOT NULL DEFAULT 'epoch',
	acquired timestamptz,
	renewed timestamptz
)`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO provkit_ha_lease (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", l.name())
		return err
	}); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("lock: create table provkit_ha_lease: %w", err)
	}
	if _, err := c.Exec(ctx, "LISTEN "+pgChannel); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("lock: listen: %w", err)
	}
	l.conn = c
	return c, nil
}

// dropLocked closes the connection after an error, so the next call reconnects.
func (l *PGLock) dropLocked(err error) {
	if l.conn == nil {
		return
	}
	l.log().Warn("ha: lock connection dropped", "err", err)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	l.conn.Close(ctx)
	cancel()
	l.conn = nil
}

func micros(d time.Duration) int64 { return d.Microseconds() }

// Acquire takes the lock when its lease has expired or was released (or when holder
// already has it, should an earlier answer have been lost).
func (l *PGLock) Acquire(ctx context.Context, holder string) (Lease, error) {
	if holder == "" {
		return Lease{}, errors.New("lock: empty holder")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.connLocked(ctx)
	if err != nil {
		return Lease{}, err
	}
	start := time.Now()
	var token int64
	err = c.QueryRow(ctx, `UPDATE provkit_ha_lease
SET holder = $2, token = token + 1, expires = clock_timestamp() + $3 * interval '1 microsecond',
    acquired = clock_timestamp(), renewed = clock_timestamp()
WHERE name = $1 AND (expires <= clock_timestamp() OR holder = $2)
RETURNING token`, l.name(), holder, micros(l.ttl())).Scan(&token)
	if err == nil {
		return Lease{Holder: holder, Token: token, Start: start, TTL: l.ttl()}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		l.dropLocked(err)
		return Lease{}, fmt.Errorf("lock: acquire: %w", err)
	}
	h := &HeldError{}
	var secs float64
	err = c.QueryRow(ctx, `SELECT holder, token, GREATEST(EXTRACT(EPOCH FROM expires - clock_timestamp()), 0)::float8
FROM provkit_ha_lease WHERE name = $1`, l.name()).Scan(&h.Holder, &h.Token, &secs)
	if err != nil {
		l.dropLocked(err)
		return Lease{}, fmt.Errorf("lock: acquire: %w", err)
	}
	h.Remaining = time.Duration(math.Min(secs, 1e6) * float64(time.Second))
	return Lease{}, h
}

// Renew extends the lease from now, if it is still held and has not expired.
func (l *PGLock) Renew(ctx context.Context, ls Lease) (Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.connLocked(ctx)
	if err != nil {
		return ls, err
	}
	start := time.Now()
	var token int64
	err = c.QueryRow(ctx, `UPDATE provkit_ha_lease
SET expires = clock_timestamp() + $4 * interval '1 microsecond', renewed = clock_timestamp()
WHERE name = $1 AND holder = $2 AND token = $3 AND expires > clock_timestamp()
RETURNING token`, l.name(), ls.Holder, ls.Token, micros(l.ttl())).Scan(&token)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ls, fmt.Errorf("lock %s: token %d: %w", l.name(), ls.Token, ErrLost)
	case err != nil:
		l.dropLocked(err)
		return ls, fmt.Errorf("lock: renew: %w", err)
	}
	ls.Start, ls.TTL = start, l.ttl()
	return ls, nil
}

// Release frees the lock, if ls still holds it, and notifies the waiting nodes.
func (l *PGLock) Release(ctx context.Context, ls Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.connLocked(ctx)
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, `WITH r AS (
	UPDATE provkit_ha_lease SET holder = '', expires = clock_timestamp()
	WHERE name = $1 AND holder = $2 AND token = $3 RETURNING name)
SELECT pg_notify('`+pgChannel+`', name) FROM r`, l.name(), ls.Holder, ls.Token)
	if err != nil {
		l.dropLocked(err)
		return fmt.Errorf("lock: release: %w", err)
	}
	return nil
}

// Wait returns when this lock's release is announced, or after max, or when ctx ends
// (then with ctx's error).
func (l *PGLock) Wait(ctx context.Context, max time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.connLocked(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	for {
		n, err := c.WaitForNotification(wctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if wctx.Err() != nil {
				return nil
			}
			l.dropLocked(err)
			return fmt.Errorf("lock: wait: %w", err)
		}
		if n.Payload == l.name() {
			return nil
		}
	}
}

// LeaseInfo is the lock's row as the store has it.
type LeaseInfo struct {
	Name string
	// Holder is the last holder; the lock is free when Remaining is zero.
	Holder   string
	Token    int64
	Acquired time.Time
	Renewed  time.Time
	// Remaining is how long the lease runs unless renewed; zero when free or expired.
	Remaining time.Duration
}

// Info reads the lock's row.
func (l *PGLock) Info(ctx context.Context) (LeaseInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.connLocked(ctx)
	if err != nil {
		return LeaseInfo{}, err
	}
	li := LeaseInfo{Name: l.name()}
	var acq, ren *time.Time
	var secs float64
	err = c.QueryRow(ctx, `SELECT holder, token, acquired, renewed,
	GREATEST(EXTRACT(EPOCH FROM expires - clock_timestamp()), 0)::float8
FROM provkit_ha_lease WHERE name = $1`, l.name()).Scan(&li.Holder, &li.Token, &acq, &ren, &secs)
	if err != nil {
		l.dropLocked(err)
		return LeaseInfo{}, fmt.Errorf("lock: %w", err)
	}
	if acq != nil {
		li.Acquired = *acq
	}
	if ren != nil {
		li.Renewed = *ren
	}
	li.Remaining = time.Duration(math.Min(secs, 1e6) * float64(time.Second))
	return li, nil
}

// Close closes the connection to the store.
func (l *PGLock) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := l.conn.Close(ctx)
	l.conn = nil
	return err
}

// redactDSN hides a password in a DSN for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the store"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
