package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/tabdump-headers.golden from the schema")

// tabspecTables are the table names of %tabspec in perl-xCAT/xCAT/Schema.pm at the commit
// provkit follows (shared/xcat/schema.md), in Schema.pm's order.
var tabspecTables = []string{
	"statelite", "domain", "kvm_nodedata", "kvm_masterdata", "litetree", "litefile", "vmmaster",
	"vm", "hypervisor", "virtsd", "storage", "websrv", "boottarget", "bootparams", "prodkey",
	"chain", "deps", "hosts", "ipmi", "openbmc", "iscsi", "mac", "monitoring", "monsetting", "mp",
	"mpa", "networks", "nodegroup", "nodehm", "nodelist", "nodepos", "noderes", "pdu", "switches",
	"nodetype", "notification", "osimage", "linuximage", "winimage", "passwd", "policy",
	"postscripts", "ppc", "ppcdirect", "ppchcp", "servicenode", "site", "pduoutlet", "switch",
	"vpd", "nimimage", "performance", "zone", "eventlog", "auditlog", "prescripts", "routes",
	"zvmivp", "zvm", "firmware", "nics", "rack", "osdistro", "osdistroupdate", "kit", "kitrepo",
	"kitcomponent", "discoverydata", "cfgmgt", "mic", "hwinv", "token", "taskstate",
}

func TestSchemaHasEveryTabspecTable(t *testing.T) {
	want := slices.Clone(tabspecTables)
	slices.Sort(want)
	if diff := cmp.Diff(want, TableNames()); diff != "" {
		t.Errorf("tables (-Schema.pm +provkit):\n%s", diff)
	}
}

func TestSchemaWellFormed(t *testing.T) {
	for _, tab := range Tables() {
		t.Run(tab.Name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, c := range tab.Columns {
				if seen[c] {
					t.Errorf("column %q twice", c)
				}
				seen[c] = true
			}
			if !tab.HasColumn("disable") {
				t.Errorf("no disable column")
			}
			// Schema.pm gives taskstate no comments column; every other table has one.
			if tab.HasColumn("comments") == (tab.Name == "taskstate") {
				t.Errorf("comments column: have %v", tab.HasColumn("comments"))
			}
			if len(tab.Keys) == 0 {
				t.Errorf("no key columns")
			}
			for _, c := range append(append(slices.Clone(tab.Keys), tab.NotNull...), tab.NodeCol) {
				if c != "" && !tab.HasColumn(c) {
					t.Errorf("key, required or node column %q is not a column", c)
				}
			}
			if tab.Descr == "" || !strings.HasSuffix(tab.Descr, ".") {
				t.Errorf("description %q: want a sentence", tab.Descr)
			}
			if tab.NodeKeyed() && !tab.IsKey(tab.NodeColumn()) {
				t.Errorf("node column %q is not a key", tab.NodeColumn())
			}
		})
	}
}

// readGolden reads testdata/tabdump-headers.golden: one "table #header" line per table.
func readGolden(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "tabdump-headers.golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, header, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(header, "#") {
			t.Fatalf("golden line %q: want \"table #header\"", sc.Text())
		}
		out[name] = header
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTabdumpHeadersGolden checks every table's tabdump header, as a fresh store prints
// it, against the golden file and the golden file against the column lists: a change of
// column order or name, which existing stores and dumps could not follow, shows here.
func TestTabdumpHeadersGolden(t *testing.T) {
	if *updateGolden {
		var b strings.Builder
		for _, name := range TableNames() {
			tab, _ := LookupTable(name)
			fmt.Fprintf(&b, "%s #%s\n", name, strings.Join(tab.Columns, ","))
		}
		if err := os.WriteFile(filepath.Join("testdata", "tabdump-headers.golden"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden := readGolden(t)
	if diff := cmp.Diff(TableNames(), sortedKeys(golden)); diff != "" {
		t.Errorf("tables in the golden file (-schema +golden):\n%s", diff)
	}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tab := range Tables() {
		if diff := cmp.Diff(cols(golden[tab.Name]), tab.Columns); diff != "" {
			t.Errorf("%s columns (-golden +schema):\n%s", tab.Name, diff)
		}
		var out bytes.Buffer
		if err := Tabdump(context.Background(), s, tab.Name, nil, &out); err != nil {
			t.Fatal(err)
		}
		header, _, _ := strings.Cut(out.String(), "\n")
		if header != golden[tab.Name] {
			t.Errorf("tabdump %s header = %q, want %q", tab.Name, header, golden[tab.Name])
		}
	}
}

// roundTripRows makes rows for every column of tab: one with every column set to values
// that need quoting, one with only its keys, one disabled.
func roundTripRows(tab *Table) [][]string {
	var out [][]string
	for i := range 3 {
		rec := make([]string, len(tab.Columns))
		for j, c := range tab.Columns {
			switch {
			case tab.IsKey(c):
				rec[j] = fmt.Sprintf("%s-%d", c, i)
			case i == 0:
				rec[j] = fmt.Sprintf("%s \"v\", a,b\nsecond line|x!y", c)
			case i == 1 && slices.Contains(tab.NotNull, c):
				rec[j] = "required"
			case i == 2 && c == "disable":
				rec[j] = "1"
			case i == 2 && j%2 == 0:
				rec[j] = c + "=" + strings.Repeat("z", j)
			}
		}
		out = append(out, rec)
	}
	return out
}

// TestTabrestoreTabdumpEveryTable restores rows into every table of the schema and dumps
// them again, on every backend: the dump must be the file that was restored.
func TestTabrestoreTabdumpEveryTable(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		for _, tab := range Tables() {
			var in bytes.Buffer
			w, err := NewCSVWriter(&in, tab.Columns)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range roundTripRows(&tab) {
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
			}
			n, err := Tabrestore(ctx, s, tab.Name, bytes.NewReader(in.Bytes()), false)
			if err != nil || n != 3 {
				t.Fatalf("tabrestore %s: %d rows, %v", tab.Name, n, err)
			}
			var out bytes.Buffer
			if err := Tabdump(ctx, s, tab.Name, nil, &out); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(in.String(), out.String()); diff != "" {
				t.Errorf("tabdump %s after tabrestore (-restored +dumped):\n%s", tab.Name, diff)
			}
		}
	})
}

// oldSchemaTables are the tables of the schema before every table of Schema.pm was added.
var oldSchemaTables = []string{
	"site", "networks", "nodelist", "nodegroup", "hosts", "mac", "nodetype", "noderes", "nodehm",
	"ipmi", "openbmc", "passwd", "osimage", "linuximage", "chain", "policy", "nodepos", "vpd",
	"servicenode", "postscripts", "bootparams", "nics", "statelite", "litefile", "litetree",
	"switch", "switches", "hwinv", "discoverydata",
}

// TestStoreMigratesNewTables makes a store look like one made by the older schema (only
// its tables, its fingerprint) and checks that opening it creates the new tables and keeps
// the data.
func TestStoreMigratesNewTables(t *testing.T) {
	ctx := context.Background()
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s, err := Open(ctx, b.dsn)
			if err != nil {
				t.Fatal(err)
			}
			update(t, s, func(tx Tx) error {
				return tx.Put("nodelist", Row{"node": "lpar1", "groups": "all"})
			})
			var dropped []string
			for _, tab := range Tables() {
				if slices.Contains(oldSchemaTables, tab.Name) {
					continue
				}
				dropped = append(dropped, tab.Name)
				if _, err := s.db.ExecContext(ctx, "DROP TABLE "+quote(tab.Name)); err != nil {
					t.Fatal(err)
				}
			}
			if len(dropped) != len(tabspecTables)-len(oldSchemaTables) {
				t.Fatalf("dropped %d tables, want %d", len(dropped), len(tabspecTables)-len(oldSchemaTables))
			}
			if _, err := s.db.ExecContext(ctx, `UPDATE provkit_meta SET value = 'older' WHERE name = 'schema'`); err != nil {
				t.Fatal(err)
			}
			s.Close()

			s, err = Open(ctx, b.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, name := range dropped {
				update(t, s, func(tx Tx) error {
					tab, _ := LookupTable(name)
					r := Row{}
					for _, k := range append(slices.Clone(tab.Keys), tab.NotNull...) {
						r[k] = "x"
					}
					return tx.Put(name, r)
				})
				if got := rows(t, s, name, nil); len(got) != 1 {
					t.Errorf("%s after migration: %d rows, want the 1 written", name, len(got))
				}
			}
			if got := rows(t, s, "nodelist", Row{"node": "lpar1"}); len(got) != 1 || got[0]["groups"] != "all" {
				t.Errorf("nodelist lpar1 after migration = %v", got)
			}
			var fp string
			if err := s.db.QueryRowContext(ctx, `SELECT value FROM provkit_meta WHERE name = 'schema'`).Scan(&fp); err != nil || fp != schemaFingerprint() {
				t.Errorf("schema fingerprint after migration = %q, %v; want %q", fp, err, schemaFingerprint())
			}
			if n := len(rows(t, s, "policy", Row{"priority": "1"})); n != 1 {
				t.Errorf("migration of an existing store: %d policy rows with priority 1, want 1 (no defaults again)", n)
			}
		})
	}
}

func TestStoreNonEmpty(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		update(t, s, func(tx Tx) error { return tx.Put("ppc", Row{"node": "lpar1", "hcp": "hmc1"}) })
		var got map[string]bool
		err := s.View(context.Background(), func(tx Tx) (err error) {
			got, err = tx.(*sqlTx).NonEmpty(TableNames())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// A fresh store holds only xCAT's defaults (site, postscripts, policy).
		want := map[string]bool{"site": true, "postscripts": true, "policy": true, "ppc": true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("non-empty tables (-want +got):\n%s", diff)
		}
		err = s.View(context.Background(), func(tx Tx) error {
			_, err := tx.(*sqlTx).NonEmpty([]string{"site", "nosuch"})
			return err
		})
		if !errors.Is(err, ErrUnknownTable) {
			t.Errorf("NonEmpty of an unknown table: err = %v, want ErrUnknownTable", err)
		}
	})
}
