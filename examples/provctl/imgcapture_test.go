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
