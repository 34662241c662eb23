package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImgcaptureBadInput: each bad argument is named, and nothing is made.
func TestImgcaptureBadInput(t *testing.T) {
	c := newCLI(t)
	inst := filepath.Join(c.dir, "install")
	c.ok("chtab", "key=installdir", "site.value="+inst)
	c.ok("nodeadd", "golden", "groups=all", "hosts.ip=127.0.0.1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"golden", "-t", "image", "-o", "g"}, `-t "image"`},
		{[]string{"golden", "-o", ""}, `-o ""`},
		{[]string{"golden", "-o", "a/b"}, `-o "a/b"`},
		{[]string{"nosuchnode", "-o", "g"}, "nosuchnode"},
		{[]string{"golden", "-o", "g", "--override", "nosuchclass"}, `--override "nosuchclass"`},
		{[]string{"golden", "-o", "g", "--nodeinit", filepath.Join(c.dir, "missing")}, "nodeinit"},
	} {
		errs := c.fails(append([]string{"imgcapture"}, tc.args...)...)
		if !strings.Contains(errs, tc.want) {
			t.Errorf("imgcapture %q: %q, want it to name %s", tc.args, errs, tc.want)
		}
	}
	if _, err := os.Stat(inst); !os.IsNotExist(err) {
		t.Errorf("a refused imgcapture made %s (%v)", inst, err)
	}
	if errs := c.fails("lsdef", "-t", "osimage"); !strings.Contains(errs, "Could not find any object definitions") {
		t.Errorf("after refused imgcaptures, lsdef -t osimage: %q", errs)
	}
}

// TestImageKernel: the clones boot the running kernel when the tree has its modules,
// else the tree's only kernel.
func TestImageKernel(t *testing.T) {
	tests := []struct {
		name    string
		dirs    []string
		running string
		want    string
	}{
		{"running installed", []string{"lib/modules/6.1.0-1-amd64", "lib/modules/6.1.0-2-amd64"}, "6.1.0-2-amd64", "6.1.0-2-amd64"},
		{"running not installed", []string{"lib/modules/6.1.0-1-amd64"}, "6.18.4-host", "6.1.0-1-amd64"},
		{"usr/lib only", []string{"usr/lib/modules/5.14.0-1.el9"}, "6.18.4-host", "5.14.0-1.el9"},
		{"several, none running", []string{"lib/modules/a", "lib/modules/b"}, "c", "c"},
		{"none", nil, "6.18.4-host", "6.18.4-host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := t.TempDir()
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if got := imageKernel(tree, tt.running); got != tt.want {
				t.Errorf("imageKernel(%v, %q) = %q, want %q", tt.dirs, tt.running, got, tt.want)
			}
		})
	}
}
