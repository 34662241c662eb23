package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/provkit/provkit/cdsl"
)

// cdslRoot makes a root with CDSL infrastructure for n1 and n2 whose /etc/hostname is
// host-dependent, each node's copy holding its name.
func cdslRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/hostname"), []byte("default\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := cdsl.Create(dir, "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if err := repo.MakeHostDependent("/etc/hostname"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		p, err := repo.Resolve(n, "/etc/hostname")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCDSLPlan(t *testing.T) {
	dir := cdslRoot(t)
	tests := []struct {
		node string
		want []cdsl.Mount
	}{
		{"n1", []cdsl.Mount{{Source: "/cluster/cdsl/n1", Target: "/cdsl.local"}}},
		{"n2", []cdsl.Mount{{Source: "/cluster/cdsl/n2", Target: "/cdsl.local"}}},
		{"n9", []cdsl.Mount{{Source: "/cluster/cdsl/default", Target: "/cdsl.local"}}}, // no tree of its own
	}
	for _, tt := range tests {
		got, err := cdslPlan(dir, tt.node)
		if err != nil {
			t.Fatalf("cdslPlan(%s): %v", tt.node, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("cdslPlan(%s) (-want +got):\n%s", tt.node, diff)
		}
	}
	if _, err := cdslPlan(t.TempDir(), "n1"); !errors.Is(err, cdsl.ErrNoInventory) || !strings.Contains(err.Error(), "provkit.cdsl=1") {
		t.Errorf("a root without CDSLs: %v, want ErrNoInventory naming provkit.cdsl=1", err)
	}
	if _, err := cdslPlan(dir, "../n1"); err == nil {
		t.Errorf("node ../n1 accepted")
	}
}
