// Package pgtest gives a test a PostgreSQL database of its own on a server it is given.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
)

// FreshDatabase creates a database with a random name prefix_<10 hex digits> on the
// server of base (a postgres:// URL), drops it (forcing connections out) when tb's test
// ends, and returns its URL: base with the database's name as the path.
func FreshDatabase(tb testing.TB, base, prefix string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("PostgreSQL URL: %v", err)
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("PostgreSQL at %s: %v", u.Redacted(), err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("PostgreSQL at %s: %v", u.Redacted(), err)
	}
	tb.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u.Path = "/" + name
	return u.String()
}
