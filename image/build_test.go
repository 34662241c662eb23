package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestParseAptSources(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		deb822 bool
		want   []AptSource
		err    bool
	}{
		{"one-line", "# c\ndeb http://deb.debian.org/debian bookworm main contrib\n" +
			"deb-src http://deb.debian.org/debian bookworm main\n" +
			"deb [arch=amd64 signed-by=/k.gpg] http://security.debian.org/debian-security bookworm-security main # x\n", false,
			[]AptSource{
				{Types: []string{"deb"}, URI: "http://deb.debian.org/debian", Suites: []string{"bookworm"}, Components: []string{"main", "contrib"}},
				{Types: []string{"deb-src"}, URI: "http://deb.debian.org/debian", Suites: []string{"bookworm"}, Components: []string{"main"}},
				{Types: []string{"deb"}, URI: "http://security.debian.org/debian-security", Suites: []string{"bookworm-security"}, Components: []string{"main"}},
			}, false},
		{"deb822", "Types: deb\n# http://snapshot\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n" +
			"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb deb-src\nURIs: http://a/ http://b/\nSuites: sid\n" +
			"Components:\n main\n non-free\n\nEnabled: no\nTypes: deb\nURIs: http://off/\nSuites: x\n", true,
			[]AptSource{
				{Types: []string{"deb"}, URI: "http://deb.debian.org/debian", Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}},
				{Types: []string{"deb", "deb-src"}, URI: "http://a/", Suites: []string{"sid"}, Components: []string{"main", "non-free"}},
				{Types: []string{"deb", "deb-src"}, URI: "http://b/", Suites: []string{"sid"}, Components: []string{"main", "non-free"}},
			}, false},
		{"bad type", "rpm http://x y\n", false, nil, true},
		{"short line", "deb http://x\n", false, nil, true},
		{"stanza without URIs", "Types: deb\nSuites: x\n", true, nil, true},
		{"not a field", "Types deb\n", true, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAptSources(strings.NewReader(tt.in), tt.deb822)
			if (err != nil) != tt.err {
				t.Fatalf("ParseAptSources = %v, want error %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" && !tt.err {
				t.Errorf("ParseAptSources (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAptMirror(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "etc/apt/sources.list.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "debian.sources"), []byte("Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n\n"+
		"Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"), 0o644)
	os.WriteFile(filepath.Join(d, "other.list.disabled"), []byte("garbage"), 0o644)
	for _, tt := range []struct{ suite, want string }{{"bookworm", "http://mirror.example/debian"}, {"trixie", "http://mirror.example/debian"}} {
		got, err := AptMirror(root, tt.suite)
		if err != nil || got != tt.want {
			t.Errorf("AptMirror(%q) = %q, %v; want %q", tt.suite, got, err, tt.want)
		}
	}
	if _, err := AptMirror(t.TempDir(), "bookworm"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("AptMirror(no sources) = %v, want ErrNotExist", err)
	}
}

// FuzzAptSources: never panics; one-line sources that parse render and parse the same.
func FuzzAptSources(f *testing.F) {
	f.Add("deb [arch=amd64] http://deb.debian.org/debian bookworm main\n", false)
	f.Add("Types: deb\nURIs: http://x/\nSuites: a b\nComponents:\n main\n", true)
	f.Fuzz(func(t *testing.T, in string, deb822 bool) {
		got, err := ParseAptSources(strings.NewReader(in), deb822)
		if err != nil || deb822 {
			return
		}
		var b strings.Builder
		for _, s := range got {
			b.WriteString(strings.Join([]string{s.Types[0], s.URI, s.Suites[0]}, " "))
			for _, c := range s.Components {
				b.WriteString(" " + c)
			}
			b.WriteString("\n")
		}
		again, err := ParseAptSources(strings.NewReader(b.String()), false)
		if err != nil {
			t.Fatalf("re-parse %q: %v", b.String(), err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("round trip differs:\n%s", diff)
		}
	})
}

func TestBuildDirectoryAndTarball(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	want := snapshot(t, src, snapOpts{mtimes: true, xattrs: true})
	base := t.TempDir()
	ctx := context.Background()

	dirImg := filepath.Join(base, "from-dir", "rootimg")
	if _, err := Build(ctx, Spec{Dir: dirImg, Source: Directory{Path: src}}); err != nil {
		t.Fatalf("Build(Directory): %v", err)
	}
	if diff := cmp.Diff(want, snapshot(t, dirImg, snapOpts{mtimes: true, xattrs: true})); diff != "" {
		t.Errorf("Build(Directory) tree (-source +image):\n%s", diff)
	}

	for _, f := range []PackOptions{{Format: Tar, Compression: Zstd}, {Format: CPIO, Compression: Gzip}} {
		arch := filepath.Join(base, "rootfs."+string(f.Format))
		if _, err := PackFile(ctx, src, arch, f); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(base, "from-"+string(f.Format))
		if _, err := Build(ctx, Spec{Dir: img, Source: Tarball{Path: arch}}); err != nil {
			t.Fatalf("Build(Tarball %s): %v", f.Format, err)
		}
		if diff := cmp.Diff(want, snapshot(t, img, snapOpts{mtimes: true})); diff != "" {
			t.Errorf("Build(Tarball) tree (-source +image):\n%s", diff)
		}
	}
}

func TestBuildReplaceAndHooks(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "version"), []byte("1"), 0o644)
	dir := filepath.Join(t.TempDir(), "img")
	ctx := context.Background()
	hook := filepath.Join(t.TempDir(), "hook.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\necho \"hook ran on $1\"\necho postinstalled > \"$1/marker\"\n[ \"$PROVKIT_ROOT\" = \"$1\" ] && [ \"$EXTRA\" = yes ]\n"), 0o755)
	var out bytes.Buffer
	if _, err := Build(ctx, Spec{Dir: dir, Source: Directory{Path: src}, PostInstall: []string{hook}, Env: []string{"EXTRA=yes"}, Output: &out}); err != nil {
		t.Fatalf("Build: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "marker")); string(b) != "postinstalled\n" {
		t.Errorf("postinstall hook did not run in the image: marker %q", b)
	}
	if !strings.Contains(out.String(), "hook ran on ") {
		t.Errorf("hook output not passed on: %q", out.String())
	}
	// A second build without Replace is refused, and changes nothing.
	if _, err := Build(ctx, Spec{Dir: dir, Source: Directory{Path: src}}); !errors.Is(err, ErrExists) {
		t.Errorf("Build over an image = %v, want ErrExists", err)
	}
	// A failed rebuild leaves the old image.
	os.WriteFile(filepath.Join(src, "version"), []byte("2"), 0o644)
	bad := filepath.Join(t.TempDir(), "bad.sh")
	os.WriteFile(bad, []byte("#!/bin/sh\necho broken on purpose >&2\nexit 3\n"), 0o755)
	_, err := Build(ctx, Spec{Dir: dir, Source: Directory{Path: src}, Replace: true, PostInstall: []string{bad}})
	if err == nil || !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("Build with a failing hook = %v, want an error quoting its output", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "version")); string(b) != "1" {
		t.Errorf("failed rebuild changed the image: version %q", b)
	}
	// A good rebuild replaces it, and leaves no temporary trees behind.
	if _, err := Build(ctx, Spec{Dir: dir, Source: Directory{Path: src}, Replace: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "version")); string(b) != "2" {
		t.Errorf("rebuild did not replace the image: version %q", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 1 {
		t.Errorf("build directory holds %d entries, want only the image", len(ents))
	}
	for _, tt := range []Spec{{Source: Directory{Path: src}}, {Dir: dir}, {Dir: dir + "2", Source: Directory{Path: src}, Packages: []string{"-oops"}}} {
		if _, err := Build(ctx, tt); err == nil {
			t.Errorf("Build(%+v) = nil, want an error", tt)
		}
	}
}

// layerOf builds an image layer from tar entries.
func layerOf(t *testing.T, hdrs ...tar.Header) v1.Layer {
	t.Helper()
	data := tarOf(t, hdrs...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestBuildOCI flattens a two-layer image (whiteout, opaque directory, a hard link to a
// lower layer's file, owners) from an OCI layout and from a docker save tarball.
func TestBuildOCI(t *testing.T) {
	l1 := layerOf(t,
		tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "etc/gone", Typeflag: tar.TypeReg, Linkname: "deleted later"},
		tar.Header{Name: "etc/kept", Typeflag: tar.TypeReg, Linkname: "kept", Uid: 1000, Gid: 1000},
		tar.Header{Name: "opq/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "opq/old", Typeflag: tar.TypeReg, Linkname: "hidden by opaque"},
		tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "bin/tool", Typeflag: tar.TypeReg, Linkname: "tool", Mode: 0o755},
	)
	l2 := layerOf(t,
		tar.Header{Name: "etc/.wh.gone", Typeflag: tar.TypeReg},
		tar.Header{Name: "opq/.wh..wh..opq", Typeflag: tar.TypeReg},
		tar.Header{Name: "opq/new", Typeflag: tar.TypeReg, Linkname: "new"},
		tar.Header{Name: "bin/tool-alias", Typeflag: tar.TypeLink, Linkname: "bin/tool"},
		tar.Header{Name: "etc/added", Typeflag: tar.TypeReg, Linkname: "added", Uid: 0, Gid: 42, Mode: 0o640},
	)
	img, err := mutate.AppendLayers(empty.Image, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	lp, err := layout.Write(filepath.Join(base, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "bookworm"})); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag("provkit/test:1")
	if err := tarball.WriteToFile(filepath.Join(base, "docker.tar"), ref, img); err != nil {
		t.Fatal(err)
	}
	want := []string{"bin dir", "bin/tool file", "bin/tool-alias file", "etc dir", "etc/added file", "etc/kept file", "opq dir", "opq/new file"}
	for _, src := range []OCI{
		{Path: filepath.Join(base, "layout")},
		{Path: filepath.Join(base, "layout"), Ref: "bookworm"},
		{Path: filepath.Join(base, "docker.tar")},
		{Path: filepath.Join(base, "docker.tar"), Ref: "provkit/test:1"},
	} {
		t.Run(src.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "img")
			if _, err := Build(context.Background(), Spec{Dir: dir, Source: src}); err != nil {
				t.Fatalf("Build(%s): %v", src, err)
			}
			if diff := cmp.Diff(want, listTree(t, dir)); diff != "" {
				t.Errorf("flattened tree (-want +got):\n%s", diff)
			}
			snap := snapshot(t, dir, snapOpts{})
			for _, s := range snap {
				switch s.Path {
				case "bin/tool-alias":
					if s.Group != "bin/tool" {
						t.Errorf("bin/tool-alias is not a hard link of bin/tool: %+v", s)
					}
				case "etc/added":
					if s.Perm != "0640" || (os.Geteuid() == 0 && s.GID != 42) {
						t.Errorf("etc/added: %+v, want mode 0640 group 42", s)
					}
				case "etc/kept":
					if os.Geteuid() == 0 && s.UID != 1000 {
						t.Errorf("etc/kept: uid %d, want 1000", s.UID)
					}
				}
			}
		})
	}
	for _, bad := range []OCI{
		{Path: filepath.Join(base, "layout"), Ref: "nosuch"},
		{Path: base},
		{Path: filepath.Join(base, "layout"), Platform: "linux/s390x/bad/extra"},
	} {
		if _, err := Build(context.Background(), Spec{Dir: filepath.Join(t.TempDir(), "x"), Source: bad}); err == nil {
			t.Errorf("Build(%s) = nil, want an error", bad)
		}
	}
}
