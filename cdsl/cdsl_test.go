package cdsl

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// image builds a small root tree: etc/hostname, etc/ssh/{sshd_config,ssh_host_key},
// var/lib/{dpkg/status,misc}, var/log/, usr/bin/tool, a merged-usr style bin -> usr/bin
// link, and a link that points outside (escape -> /etc).
func image(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"etc/hostname":          "template\n",
		"etc/ssh/sshd_config":   "Port 22\n",
		"etc/ssh/ssh_host_key":  "KEY\n",
		"var/lib/dpkg/status":   "Package: base\n",
		"var/lib/misc/.keep":    "",
		"var/log/.keep":         "",
		"usr/bin/tool":          "#!/bin/sh\n",
		"usr/share/doc/README":  "doc\n",
		"srv/data/config.json":  "{}\n",
		"root/.profile":         "PS1='# '\n",
		"opt/app/etc/app.conf":  "a=1\n",
		"opt/app/var/state.txt": "s\n",
	}
	for p, c := range files {
		mustWrite(t, filepath.Join(dir, p), c, 0o644)
	}
	must(t, os.Chmod(filepath.Join(dir, "usr/bin/tool"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "etc/ssh/ssh_host_key"), 0o600))
	must(t, os.Symlink("usr/bin", filepath.Join(dir, "bin")))
	must(t, os.Symlink("/etc", filepath.Join(dir, "escape")))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "etc/hostname"), old, old))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), mode))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot describes a tree: every path with its type, mode, link target and content hash.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			h := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(h[:8])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCreateIsIdempotent(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1", "n2")
	must(t, err)
	defer r.Close()
	for _, d := range []string{"cluster/cdsl/default", "cluster/cdsl/n1", "cluster/cdsl/n2", "cluster/shared", "cdsl.local"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("Create: %s is not a directory: %v", d, err)
		}
	}
	must(t, r.MakeHostDependent("etc/hostname"))
	before := snapshot(t, dir)
	r2, err := Create(dir, "n1", "n3")
	must(t, err)
	defer r2.Close()
	nodes, err := r2.Nodes()
	must(t, err)
	if diff := cmp.Diff([]string{"n1", "n2", "n3"}, nodes); diff != "" {
		t.Errorf("Nodes() after second Create (-want +got):\n%s", diff)
	}
	if got := readFile(t, filepath.Join(dir, "cluster/cdsl/n3/etc/hostname")); got != "template\n" {
		t.Errorf("new node n3 got hostname %q, want the default copy", got)
	}
	after := snapshot(t, dir)
	for p, d := range before {
		if p != DefaultInventory && after[p] != d {
			t.Errorf("second Create changed %s: %s -> %s", p, d, after[p])
		}
	}
}

func TestMakeHostDependent(t *testing.T) {
	tests := []struct {
		name, path, clean string
		wantLink          string
	}{
		{"file", "/etc/hostname", "etc/hostname", "../cdsl.local/etc/hostname"},
		{"directory", "etc/ssh/", "etc/ssh", "../cdsl.local/etc/ssh"},
		{"top-level directory", "/var", "var", "cdsl.local/var"},
		{"deep file", "opt/app/etc/app.conf", "opt/app/etc/app.conf", "../../../cdsl.local/opt/app/etc/app.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := image(t)
			orig := snapshot(t, dir)
			r, err := Create(dir, "n1", "n2")
			must(t, err)
			defer r.Close()
			if err := r.MakeHostDependent(tt.path); err != nil {
				t.Fatalf("MakeHostDependent(%q) = %v", tt.path, err)
			}
			if got, err := os.Readlink(filepath.Join(dir, tt.clean)); err != nil || got != tt.wantLink {
				t.Errorf("link %s = %q, %v; want %q", tt.clean, got, err, tt.wantLink)
			}
			for _, n := range []string{"default", "n1", "n2"} {
				copyRoot := filepath.Join(dir, "cluster/cdsl", n)
				got := snapshot(t, filepath.Join(copyRoot, tt.clean))
				want := map[string]string{}
				for p, d := range orig {
					if p == tt.clean || strings.HasPrefix(p, tt.clean+"/") {
						rel, _ := filepath.Rel(tt.clean, p)
						want[rel] = d
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("copy for %s differs from the original (-want +got):\n%s", n, diff)
				}
			}
			// The whole thing resolves back to the original through the node's tree.
			for _, n := range []string{"n1", "n2", "unknown-node"} {
				p, err := r.Resolve(n, tt.path)
				must(t, err)
				want := "cluster/cdsl/" + n + "/" + tt.clean
				if n == "unknown-node" {
					want = "cluster/cdsl/default/" + tt.clean
				}
				if p != want {
					t.Errorf("Resolve(%q, %q) = %q, want %q", n, tt.path, p, want)
				}
			}
			if probs, err := r.Check(); err != nil || len(probs) > 0 {
				t.Errorf("Check() = %v, %v; want no problems", probs, err)
			}
			if ents := r.List(); len(ents) != 1 || ents[0].Path != tt.clean || ents[0].Type != HostDependent ||
				!cmp.Equal(ents[0].Nodes, []string{"n1", "n2"}) {
				t.Errorf("List() = %+v", ents)
			}
			// Nothing left behind next to the link.
			ents, _ := os.ReadDir(filepath.Join(dir, filepath.Dir(tt.clean)))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".cdsl-") {
					t.Errorf("left temporary %s", e.Name())
				}
			}
		})
	}
}

func TestMetadataIsPreserved(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1")
	must(t, err)
	defer r.Close()
	if os.Geteuid() == 0 {
		must(t, os.Chown(filepath.Join(dir, "etc/ssh/ssh_host_key"), 123, 456))
	}
	must(t, os.Chmod(filepath.Join(dir, "etc/ssh/ssh_host_key"), 0o600))
	must(t, syscall.Mkfifo(filepath.Join(dir, "etc/ssh/fifo"), 0o640))
	must(t, r.MakeHostDependent("etc/ssh"))
	fi, err := os.Lstat(filepath.Join(dir, "cluster/cdsl/n1/etc/ssh/ssh_host_key"))
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	if os.Geteuid() == 0 && (st.Uid != 123 || st.Gid != 456) {
		t.Errorf("owner %d:%d, want 123:456", st.Uid, st.Gid)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	if fi, err := os.Lstat(filepath.Join(dir, "cluster/cdsl/n1/etc/ssh/fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo not copied as a fifo: %v %v", fi, err)
	}
	must(t, r.MakeHostDependent("etc/hostname"))
	fi, err = os.Lstat(filepath.Join(dir, "cluster/cdsl/n1/etc/hostname"))
	must(t, err)
	if want := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC); !fi.ModTime().Equal(want) {
		t.Errorf("mtime %v, want %v", fi.ModTime(), want)
	}
}

func TestMakeSharedUnderHostDependent(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1", "n2")
	must(t, err)
	defer r.Close()
	must(t, r.MakeHostDependent("var"))
	// n1 changes its own /var/log; the shared path takes the default tree's content.
	mustWrite(t, filepath.Join(dir, "cluster/cdsl/n1/var/log/syslog"), "n1 log\n", 0o644)
	if err := r.MakeShared("/var/lib/dpkg"); err != nil {
		t.Fatalf("MakeShared = %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "cluster/shared/var/lib/dpkg/status")); got != "Package: base\n" {
		t.Errorf("shared copy = %q", got)
	}
	for _, n := range []string{"default", "n1", "n2"} {
		link := filepath.Join(dir, "cluster/cdsl", n, "var/lib/dpkg")
		got, err := os.Readlink(link)
		if want := "../../../../../cluster/shared/var/lib/dpkg"; err != nil || got != want {
			t.Errorf("%s links to %q (%v), want %q", link, got, err, want)
		}
		// The relative link really lands on the shared copy.
		if got := readFile(t, filepath.Join(link, "status")); got != "Package: base\n" {
			t.Errorf("through %s: %q", link, got)
		}
	}
	for _, tt := range []struct{ node, path, want string }{
		{"n1", "/var/lib/dpkg/status", "cluster/shared/var/lib/dpkg/status"},
		{"n1", "/var/log/syslog", "cluster/cdsl/n1/var/log/syslog"},
		{"n2", "/var/lib/misc", "cluster/cdsl/n2/var/lib/misc"},
		{"n2", "/cdsl.local/var/log", "cluster/cdsl/n2/var/log"},
		{"n2", "/cdsl.local", "cluster/cdsl/n2"},
		{"n2", "/usr/bin/tool", "usr/bin/tool"},
		{"n2", "/", ""},
		{"n2", "/cluster/shared/var/lib/dpkg", "cluster/shared/var/lib/dpkg"},
	} {
		if got, err := r.Resolve(tt.node, tt.path); err != nil || got != tt.want {
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q", tt.node, tt.path, got, err, tt.want)
		}
	}
	if probs, err := r.Check(); err != nil || len(probs) > 0 {
		t.Errorf("Check() = %v, %v", probs, err)
	}
	// A node added later gets the default tree, links included.
	must(t, r.AddNodes("n3"))
	if got := readFile(t, filepath.Join(dir, "cluster/cdsl/n3/var/lib/dpkg/status")); got != "Package: base\n" {
		t.Errorf("n3 through its shared link: %q", got)
	}
	if probs, err := r.Check(); err != nil || len(probs) > 0 {
		t.Errorf("Check() after AddNodes = %v, %v", probs, err)
	}
	e, err := r.Get("var/lib/dpkg")
	must(t, err)
	if diff := cmp.Diff([]string{"n1", "n2", "n3"}, e.Nodes); diff != "" {
		t.Errorf("Nodes of the shared CDSL (-want +got):\n%s", diff)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	tests := []struct {
		name string
		op   func(r *Repo) error
		want error
	}{
		{"dotdot", func(r *Repo) error { return r.MakeHostDependent("etc/../../etc/passwd") }, ErrInvalidPath},
		{"dotdot at start", func(r *Repo) error { return r.MakeHostDependent("../outside") }, ErrInvalidPath},
		{"root", func(r *Repo) error { return r.MakeHostDependent("/") }, ErrInvalidPath},
		{"empty", func(r *Repo) error { return r.MakeHostDependent("") }, ErrInvalidPath},
		{"nul", func(r *Repo) error { return r.MakeHostDependent("etc/host\x00name") }, ErrInvalidPath},
		{"infrastructure tree", func(r *Repo) error { return r.MakeHostDependent("cluster/cdsl/n1") }, ErrInvalidPath},
		{"infrastructure parent", func(r *Repo) error { return r.MakeHostDependent("cluster") }, ErrInvalidPath},
		{"link mount point", func(r *Repo) error { return r.MakeHostDependent("/cdsl.local") }, ErrInvalidPath},
		{"inventory", func(r *Repo) error { return r.MakeHostDependent(DefaultInventory) }, ErrInvalidPath},
		{"missing", func(r *Repo) error { return r.MakeHostDependent("etc/nonexistent") }, fs.ErrNotExist},
		{"through symlink", func(r *Repo) error { return r.MakeHostDependent("bin/tool") }, ErrSymlinkInPath},
		{"outside via symlink", func(r *Repo) error { return r.MakeHostDependent("escape/passwd") }, ErrSymlinkInPath},
		{"already", func(r *Repo) error { return r.MakeHostDependent("etc/hostname") }, ErrIsCDSL},
		{"inside host-dependent", func(r *Repo) error { return r.MakeHostDependent("var/log") }, ErrNesting},
		{"contains a CDSL", func(r *Repo) error { return r.MakeHostDependent("etc") }, ErrNesting},
		{"shared outside", func(r *Repo) error { return r.MakeShared("usr/bin") }, ErrNesting},
		{"shared twice", func(r *Repo) error { return r.MakeShared("var/lib/dpkg") }, ErrIsCDSL},
		{"shared missing", func(r *Repo) error { return r.MakeShared("var/nothing") }, fs.ErrNotExist},
		{"shared dotdot", func(r *Repo) error { return r.MakeShared("var/../etc") }, ErrInvalidPath},
		{"remove non-CDSL", func(r *Repo) error { return r.Remove("usr", "") }, ErrNotCDSL},
		{"remove with children", func(r *Repo) error { return r.Remove("var", "") }, ErrHasChildren},
		{"remove from bad node", func(r *Repo) error { return r.Remove("etc/hostname", "a/b") }, ErrInvalidNode},
		{"node with slash", func(r *Repo) error { return r.AddNodes("ok", "n/1") }, ErrInvalidNode},
		{"node dotdot", func(r *Repo) error { return r.AddNodes("..") }, ErrInvalidNode},
		{"node default", func(r *Repo) error { return r.AddNodes("default") }, ErrInvalidNode},
		{"node empty", func(r *Repo) error { return r.AddNodes("") }, ErrInvalidNode},
		{"node space", func(r *Repo) error { return r.AddNodes("n 1") }, ErrInvalidNode},
		{"remove node slash", func(r *Repo) error { return r.RemoveNode("../n1") }, ErrInvalidNode},
		{"resolve node slash", func(r *Repo) error { _, err := r.Resolve("n1/../n2", "etc"); return err }, ErrInvalidNode},
		{"resolve dotdot", func(r *Repo) error { _, err := r.Resolve("n1", "../etc"); return err }, ErrInvalidPath},
		{"mounts bad node", func(r *Repo) error { _, err := r.Mounts("/"); return err }, ErrInvalidNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := image(t)
			r, err := Create(dir, "n1", "n2")
			must(t, err)
			defer r.Close()
			must(t, r.MakeHostDependent("etc/hostname"))
			must(t, r.MakeHostDependent("var"))
			must(t, r.MakeShared("var/lib/dpkg"))
			before := snapshot(t, dir)
			err = tt.op(r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "cdsl") {
				t.Errorf("error %q does not say where it comes from", err)
			}
			if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
				t.Errorf("a refused operation changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1", "n2")
	must(t, err)
	defer r.Close()
	orig := snapshot(t, dir)
	must(t, r.MakeHostDependent("var"))
	must(t, r.MakeShared("var/lib/dpkg"))
	must(t, r.MakeHostDependent("etc/hostname"))
	mustWrite(t, filepath.Join(dir, "cluster/cdsl/n2/etc/hostname"), "n2\n", 0o644)

	must(t, r.Remove("var/lib/dpkg", ""))
	for _, n := range []string{"default", "n1", "n2"} {
		p := filepath.Join(dir, "cluster/cdsl", n, "var/lib/dpkg/status")
		if fi, err := os.Lstat(filepath.Dir(p)); err != nil || !fi.IsDir() {
			t.Errorf("%s: after removing the shared CDSL, want a directory again: %v", filepath.Dir(p), err)
		}
		if got := readFile(t, p); got != "Package: base\n" {
			t.Errorf("%s = %q", p, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "cluster/shared/var")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("shared copy left behind: %v", err)
	}
	must(t, r.Remove("/var", ""))
	must(t, r.Remove("etc/hostname", "n2"))
	if got := readFile(t, filepath.Join(dir, "etc/hostname")); got != "n2\n" {
		t.Errorf("etc/hostname restored from n2 = %q", got)
	}
	got := snapshot(t, dir)
	for p, d := range orig {
		if p == "etc/hostname" {
			continue
		}
		if got[p] != d {
			t.Errorf("after removing every CDSL, %s = %q, want %q", p, got[p], d)
		}
	}
	for p := range got {
		if strings.HasPrefix(p, "cluster/cdsl/n1/") || strings.HasPrefix(p, "cluster/shared/") {
			t.Errorf("left behind: %s", p)
		}
	}
	if probs, err := r.Check(); err != nil || len(probs) > 0 {
		t.Errorf("Check() = %v, %v", probs, err)
	}
}

func TestCheckFindsProblems(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1", "n2")
	must(t, err)
	defer r.Close()
	must(t, r.MakeHostDependent("etc/hostname"))
	must(t, r.MakeHostDependent("var"))
	must(t, r.MakeShared("var/lib/dpkg"))
	must(t, r.MakeHostDependent("etc/ssh"))
	// Break it in every way Check knows.
	must(t, os.Remove(filepath.Join(dir, "cluster/cdsl/n2/etc/hostname")))
	must(t, os.Remove(filepath.Join(dir, "etc/ssh")))
	mustWrite(t, filepath.Join(dir, "etc/ssh"), "not a link", 0o644)
	must(t, os.Remove(filepath.Join(dir, "cluster/cdsl/n1/var/lib/dpkg")))
	must(t, os.Symlink("../cdsl.local/etc/motd", filepath.Join(dir, "etc/motd")))
	must(t, os.Symlink("../../../../cluster/shared/var/log", filepath.Join(dir, "cluster/cdsl/n1/var/log2")))

	probs, err := r.Check()
	must(t, err)
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{
		"etc/hostname (node n2): no copy in cluster/cdsl/n2",
		`etc/ssh: is a file, want a symbolic link to ../cdsl.local/etc/ssh`,
		"cluster/cdsl/n1/var/lib/dpkg (node n1): missing (want a symbolic link to ../../../../../cluster/shared/var/lib/dpkg)",
		"cluster/cdsl/n1/var/log2 (node n1): symbolic link into cluster/shared without a shared CDSL in the inventory",
		"etc/motd: symbolic link into cdsl.local without a host-dependent CDSL in the inventory",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Check() (-want +got):\n%s", diff)
	}
}

func TestRollbackOnFailure(t *testing.T) {
	errInjected := errors.New("injected failure")
	tests := []struct {
		name, step string
		op         func(r *Repo) error
	}{
		{"host-dependent after a copy", "copy n2", func(r *Repo) error { return r.MakeHostDependent("opt/app") }},
		{"host-dependent before the inventory", "inventory", func(r *Repo) error { return r.MakeHostDependent("etc/ssh") }},
		{"shared before the inventory", "inventory", func(r *Repo) error { return r.MakeShared("var/lib/misc") }},
		{"remove host-dependent before the inventory", "inventory", func(r *Repo) error { return r.Remove("etc/hostname", "n1") }},
		{"remove shared before the inventory", "inventory", func(r *Repo) error { return r.Remove("var/lib/dpkg", "") }},
		{"add nodes after the second", "add n5", func(r *Repo) error { return r.AddNodes("n4", "n5", "n6") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := image(t)
			r, err := Create(dir, "n1", "n2", "n3")
			must(t, err)
			defer r.Close()
			must(t, r.MakeHostDependent("etc/hostname"))
			must(t, r.MakeHostDependent("var"))
			must(t, r.MakeShared("var/lib/dpkg"))
			before := snapshot(t, dir)
			r.failAt = func(step string) error {
				if step == tt.step {
					return errInjected
				}
				return nil
			}
			if err := tt.op(r); !errors.Is(err, errInjected) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
				t.Errorf("failed operation left changes (-before +after):\n%s", diff)
			}
			r.failAt = nil
			if probs, err := r.Check(); err != nil || len(probs) > 0 {
				t.Errorf("Check() after rollback = %v, %v", probs, err)
			}
		})
	}
}

func TestConcurrentRepos(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1")
	must(t, err)
	r.Close()
	paths := []string{"etc/hostname", "etc/ssh", "srv/data", "root", "usr/share/doc", "opt/app"}
	var wg sync.WaitGroup
	errs := make(chan error, len(paths))
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Open(dir) // as separate processes would
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			errs <- r.MakeHostDependent(p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	r, err = Open(dir)
	must(t, err)
	defer r.Close()
	var got []string
	for _, e := range r.List() {
		got = append(got, e.Path)
	}
	want := []string{"etc/hostname", "etc/ssh", "opt/app", "root", "srv/data", "usr/share/doc"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory after concurrent changes (-want +got):\n%s", diff)
	}
}

func TestOpenWithoutInventory(t *testing.T) {
	_, err := Open(t.TempDir())
	if !errors.Is(err, ErrNoInventory) {
		t.Errorf("Open(empty dir) = %v, want ErrNoInventory", err)
	}
}

func TestRemoveNodeAndMounts(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1", "n2")
	must(t, err)
	defer r.Close()
	must(t, r.MakeHostDependent("etc/hostname"))
	for _, tt := range []struct {
		node string
		want []Mount
	}{
		{"n1", []Mount{{Source: "/cluster/cdsl/n1", Target: "/cdsl.local"}}},
		{"n9", []Mount{{Source: "/cluster/cdsl/default", Target: "/cdsl.local"}}},
	} {
		got, err := r.Mounts(tt.node)
		must(t, err)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Mounts(%q) (-want +got):\n%s", tt.node, diff)
		}
	}
	must(t, r.RemoveNode("n1"))
	nodes, err := r.Nodes()
	must(t, err)
	if diff := cmp.Diff([]string{"n2"}, nodes); diff != "" {
		t.Errorf("Nodes() after RemoveNode (-want +got):\n%s", diff)
	}
	e, err := r.Get("etc/hostname")
	must(t, err)
	if diff := cmp.Diff([]string{"n2"}, e.Nodes); diff != "" {
		t.Errorf("entry nodes after RemoveNode (-want +got):\n%s", diff)
	}
	if err := r.RemoveNode("n1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RemoveNode of a removed node = %v, want ErrNotExist", err)
	}
}

func TestCleanPath(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		err      error
	}{
		{"/etc/hostname", "etc/hostname", nil},
		{"etc//ssh/", "etc/ssh", nil},
		{"./etc/./x", "etc/x", nil},
		{"a/../b", "", ErrInvalidPath},
		{"..", "", ErrInvalidPath},
		{"/", "", ErrInvalidPath},
		{"", "", ErrInvalidPath},
		{"a\x00b", "", ErrInvalidPath},
		{strings.Repeat("x", 256), "", ErrInvalidPath},
	} {
		got, err := CleanPath(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("CleanPath(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestInventoryRoundTrip(t *testing.T) {
	dir := image(t)
	r, err := Create(dir, "n1", "n2")
	must(t, err)
	defer r.Close()
	must(t, r.MakeHostDependent("var"))
	must(t, r.MakeShared("var/lib/dpkg"))
	data, err := os.ReadFile(filepath.Join(dir, DefaultInventory))
	must(t, err)
	for _, want := range []string{
		`<cdsls config_version="1">`,
		`cdsltree="cluster/cdsl" cdsltree_shared="cluster/shared" cdsl_link="cdsl.local"`,
		`<cdsl src="var" type="hostdependent"`,
		`<cdsl src="var/lib/dpkg" type="shared"`,
		`<noderef ref="n1"></noderef>`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("inventory lacks %s:\n%s", want, data)
		}
	}
	inv, err := parseInventory(data)
	must(t, err)
	if diff := cmp.Diff(r.List(), inv.Entries); diff != "" {
		t.Errorf("parsed inventory (-List +parsed):\n%s", diff)
	}
}

func TestParseInventoryErrors(t *testing.T) {
	ok := `<cdsls config_version="1"><defaults cdsltree="cluster/cdsl" cdsltree_shared="cluster/shared" cdsl_link="cdsl.local" default_dir="default"/>%s</cdsls>`
	for _, tt := range []struct{ name, body string }{
		{"dotdot src", `<cdsl src="../etc" type="hostdependent"/>`},
		{"absolute src", `<cdsl src="/etc" type="hostdependent"/>`},
		{"unknown type", `<cdsl src="etc" type="weird"/>`},
		{"shared without parent", `<cdsl src="etc" type="shared"/>`},
		{"same type nested", `<cdsl src="etc" type="hostdependent"/><cdsl src="etc/x" type="hostdependent"/>`},
		{"duplicate", `<cdsl src="etc" type="hostdependent"/><cdsl src="etc" type="hostdependent"/>`},
		{"bad node", `<cdsl src="etc" type="hostdependent"><nodes><noderef ref="a/b"/></nodes></cdsl>`},
		{"in infrastructure", `<cdsl src="cluster/cdsl/n1/x" type="hostdependent"/>`},
		{"bad timestamp", `<cdsl src="etc" type="hostdependent" timestamp="NaN"/>`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseInventory([]byte(fmt.Sprintf(ok, tt.body))); err == nil {
				t.Errorf("parseInventory accepted %s", tt.body)
			}
		})
	}
	for _, bad := range []string{
		`<cdsls config_version="2"/>`,
		`<cdsls config_version="1"><defaults cdsltree="../x" cdsltree_shared="s" cdsl_link="l"/></cdsls>`,
		`<cdsls config_version="1"><defaults cdsltree="a" cdsltree_shared="a/b" cdsl_link="l"/></cdsls>`,
		`not xml`,
	} {
		if _, err := parseInventory([]byte(bad)); err == nil {
			t.Errorf("parseInventory accepted %s", bad)
		}
	}
}
