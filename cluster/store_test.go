package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/provkit/provkit/internal/pgtest"
	"github.com/provkit/provkit/internal/testenv"
)

// backend is one store under test.
type backend struct {
	name string
	dsn  string
}

// testBackends returns a fresh SQLite file and, when PROVKIT_TEST_PG names a server, a
// fresh PostgreSQL database on it. Every store test runs on each.
func testBackends(t *testing.T) []backend {
	t.Helper()
	bs := []backend{{"sqlite", filepath.Join(t.TempDir(), "provkit.db")}}
	if base := os.Getenv("PROVKIT_TEST_PG"); base != "" {
		bs = append(bs, backend{"postgres", pgtest.FreshDatabase(t, base, "pk")})
	} else if testenv.Required() {
		t.Fatal("PROVKIT_TEST_PG is not set and PROVKIT_INTEGRATION=require: the PostgreSQL backend must be tested (scripts/test.sh starts a server)")
	}
	return bs
}

// eachBackend runs fn as a subtest on every backend with a freshly opened store.
func eachBackend(t *testing.T, fn func(t *testing.T, s *DB)) {
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s, err := Open(context.Background(), b.dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			fn(t, s)
		})
	}
}

func rows(t *testing.T, s Store, table string, match Row) []Row {
	t.Helper()
	var out []Row
	if err := s.View(context.Background(), func(tx Tx) (err error) {
		out, err = tx.Rows(table, match)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func update(t *testing.T, s Store, fn func(Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func TestStoreDefaults(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		site := map[string]string{}
		for _, r := range rows(t, s, "site", nil) {
			site[r["key"]] = r["value"]
		}
		for k, want := range map[string]string{"xcatdport": "3001", "xcatiport": "3002", "dhcplease": "43200", "installdir": "/install", "tftpdir": "/tftpboot"} {
			if site[k] != want {
				t.Errorf("site.%s = %q, want %q", k, site[k], want)
			}
		}
		if site["domain"] == "" {
			t.Errorf("site.domain is unset in a fresh store")
		}
		got := rows(t, s, "postscripts", Row{"node": "xcatdefaults"})
		want := []Row{{"node": "xcatdefaults", "postscripts": "syslog,remoteshell,syncfiles", "postbootscripts": "otherpkgs"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("xcatdefaults row (-want +got):\n%s", diff)
		}
		pol := rows(t, s, "policy", Row{"priority": "1"})
		if len(pol) != 1 || pol[0]["name"] != "root" || pol[0]["rule"] != "allow" {
			t.Errorf("policy 1 = %v, want name=root rule=allow", pol)
		}
		// Reopening must not add the defaults again nor fail.
		s2, err := Open(context.Background(), dsnOf(t, s))
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if n := len(rows(t, s2, "policy", Row{"priority": "1"})); n != 1 {
			t.Errorf("after reopen: %d policy rows with priority 1, want 1", n)
		}
	})
}

// dsnOf returns the DSN a test store was opened with (the redacted form is the DSN here:
// test DSNs carry no password).
func dsnOf(t *testing.T, s *DB) string {
	t.Helper()
	return s.source
}

func TestStorePutRowsOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		update(t, s, func(tx Tx) error {
			return tx.Put("nodelist",
				Row{"node": "n3", "groups": "compute,all"},
				Row{"node": "n1", "groups": "all"},
				Row{"node": "n2", "groups": "compute,all", "disable": "1"})
		})
		// Put again: upsert keeps the row's place and its other columns.
		update(t, s, func(tx Tx) error {
			return tx.Put("nodelist", Row{"node": "n3", "status": "booted"})
		})
		got := rows(t, s, "nodelist", nil)
		want := []Row{
			{"node": "n3", "groups": "compute,all", "status": "booted"},
			{"node": "n1", "groups": "all"},
			{"node": "n2", "groups": "compute,all", "disable": "1"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rows in insertion order (-want +got):\n%s", diff)
		}
		// Setting a value to "" unsets it.
		update(t, s, func(tx Tx) error {
			_, err := tx.Set("nodelist", Row{"node": "n3"}, Row{"status": ""})
			return err
		})
		if got := rows(t, s, "nodelist", Row{"node": "n3"}); got[0]["status"] != "" {
			t.Errorf("status after unset = %q, want unset", got[0]["status"])
		}
		if got := rows(t, s, "nodelist", Row{"status": ""}); len(got) != 3 {
			t.Errorf("match on unset status: %d rows, want 3", len(got))
		}
	})
}

func TestStoreSetDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		var inserted bool
		update(t, s, func(tx Tx) (err error) {
			inserted, err = tx.Set("networks", Row{"net": "10.0.0.0", "mask": "255.255.255.0"}, Row{"netname": "mgt", "gateway": "10.0.0.254"})
			return err
		})
		if !inserted {
			t.Errorf("Set of a new network: inserted = false")
		}
		update(t, s, func(tx Tx) (err error) {
			inserted, err = tx.Set("networks", Row{"net": "10.0.0.0", "mask": "255.255.255.0"}, Row{"dynamicrange": "10.0.0.200-10.0.0.250"})
			return err
		})
		if inserted {
			t.Errorf("Set of an existing network: inserted = true")
		}
		want := []Row{{"netname": "mgt", "net": "10.0.0.0", "mask": "255.255.255.0", "gateway": "10.0.0.254", "dynamicrange": "10.0.0.200-10.0.0.250"}}
		if diff := cmp.Diff(want, rows(t, s, "networks", nil)); diff != "" {
			t.Errorf("networks (-want +got):\n%s", diff)
		}
		var n int
		update(t, s, func(tx Tx) (err error) {
			n, err = tx.Delete("networks", Row{"netname": "mgt"})
			return err
		})
		if n != 1 || len(rows(t, s, "networks", nil)) != 0 {
			t.Errorf("Delete removed %d rows, %d left; want 1 and 0", n, len(rows(t, s, "networks", nil)))
		}
	})
}

func TestStoreBadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		before := rows(t, s, "site", nil)
		cases := []struct {
			name string
			fn   func(Tx) error
			want error
			text string
		}{
			{"unknown table", func(tx Tx) error { _, err := tx.Rows("nosuch", nil); return err }, ErrUnknownTable, `"nosuch"`},
			{"unknown column", func(tx Tx) error { return tx.Put("site", Row{"key": "a", "val": "b"}) }, ErrUnknownColumn, `"val"`},
			{"empty key", func(tx Tx) error { return tx.Put("site", Row{"value": "b"}) }, nil, `key column "key"`},
			{"unknown match column", func(tx Tx) error { _, err := tx.Delete("site", Row{"nokey": "x"}); return err }, ErrUnknownColumn, `"nokey"`},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				err := s.Update(context.Background(), func(tx Tx) error {
					// A write that succeeds first must be rolled back by the later error.
					if err := tx.Put("site", Row{"key": "rolledback", "value": "x"}); err != nil {
						return err
					}
					return c.fn(tx)
				})
				if err == nil {
					t.Fatalf("got no error, want one mentioning %s", c.text)
				}
				if c.want != nil && !errors.Is(err, c.want) {
					t.Errorf("error %v is not %v", err, c.want)
				}
				if !strings.Contains(err.Error(), c.text) {
					t.Errorf("error %q does not name %s", err, c.text)
				}
			})
		}
		if diff := cmp.Diff(before, rows(t, s, "site", nil)); diff != "" {
			t.Errorf("failed updates changed the site table (-before +after):\n%s", diff)
		}
	})
}

func TestStoreGeneration(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		g1, err := s.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		update(t, s, func(tx Tx) error { return tx.Put("site", Row{"key": "x", "value": "1"}) })
		g2, _ := s.Generation(ctx)
		_ = s.Update(ctx, func(tx Tx) error { return errors.New("abort") })
		g3, _ := s.Generation(ctx)
		if !(g2 > g1) || g3 != g2 {
			t.Errorf("generations %d, %d (after a write), %d (after an aborted write): want growth then no change", g1, g2, g3)
		}
	})
}

func TestStoreMigratesAddedColumns(t *testing.T) {
	// A store made by an older schema (site without comments) gets the column on open.
	dsn := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE site (rid INTEGER PRIMARY KEY, "key" TEXT NOT NULL, "value" TEXT, "disable" TEXT, UNIQUE ("key"))`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO site ("key", "value") VALUES ('domain', 'old.example')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	update(t, s, func(tx Tx) error {
		_, err := tx.Set("site", Row{"key": "domain"}, Row{"comments": "kept"})
		return err
	})
	got := rows(t, s, "site", Row{"key": "domain"})
	if len(got) != 1 || got[0]["value"] != "old.example" || got[0]["comments"] != "kept" {
		t.Errorf("migrated site.domain = %v, want value old.example and comments kept", got)
	}
}

// TestStoreConcurrentProcesses runs 8 processes that each make 1,000 read-modify-write
// changes (chtab's += on one shared row, plus a row of their own) and checks that no
// update is lost.
func TestStoreConcurrentProcesses(t *testing.T) {
	const procs, changes = 8, 1000
	n := changes
	if testing.Short() {
		n = 100
	}
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s, err := Open(context.Background(), b.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			errs := make(chan error, procs)
			for p := 0; p < procs; p++ {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "PROVKIT_STORE_CHILD="+b.dsn, fmt.Sprintf("PROVKIT_STORE_CHILD_ID=%d", p), fmt.Sprintf("PROVKIT_STORE_CHILD_N=%d", n))
				go func() {
					out, err := cmd.CombinedOutput()
					if err != nil {
						err = fmt.Errorf("child: %v: %s", err, out)
					}
					errs <- err
				}()
			}
			for p := 0; p < procs; p++ {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			got := rows(t, s, "site", Row{"key": "counter"})
			if len(got) != 1 || got[0]["value"] != strconv.Itoa(procs*n) {
				t.Errorf("shared counter = %v, want %d", got, procs*n)
			}
			for p := 0; p < procs; p++ {
				r := rows(t, s, "site", Row{"key": fmt.Sprintf("list%d", p)})
				if len(r) != 1 || len(strings.Split(r[0]["value"], ",")) != n {
					t.Errorf("process %d: list has %d items, want %d", p, len(strings.Split(r[0]["value"], ",")), n)
				}
			}
		})
	}
}

// childMain is the body of one process of TestStoreConcurrentProcesses.
func childMain(dsn string) error {
	id := os.Getenv("PROVKIT_STORE_CHILD_ID")
	n, _ := strconv.Atoi(os.Getenv("PROVKIT_STORE_CHILD_N"))
	ctx := context.Background()
	s, err := Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer s.Close()
	for i := 0; i < n; i++ {
		err := s.Update(ctx, func(tx Tx) error {
			cur, err := tx.Rows("site", Row{"key": "counter"})
			if err != nil {
				return err
			}
			v := 0
			if len(cur) > 0 {
				v, _ = strconv.Atoi(cur[0]["value"])
			}
			if _, err := tx.Set("site", Row{"key": "counter"}, Row{"value": strconv.Itoa(v + 1)}); err != nil {
				return err
			}
			mine, err := tx.Rows("site", Row{"key": "list" + id})
			if err != nil {
				return err
			}
			list := strconv.Itoa(i)
			if len(mine) > 0 {
				list = mine[0]["value"] + "," + list
			}
			_, err = tx.Set("site", Row{"key": "list" + id}, Row{"value": list})
			return err
		})
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
	}
	return nil
}

func TestMain(m *testing.M) {
	if dsn := os.Getenv("PROVKIT_STORE_CHILD"); dsn != "" {
		if err := childMain(dsn); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
