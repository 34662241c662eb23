package tftp_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/provkit/provkit/tftp"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"pxelinux.0", "pxelinux.0"},
		{"/pxelinux.0", "pxelinux.0"},
		{"//boot/grub2//grub.cfg", "boot/grub2/grub.cfg"},
		{"xcat/netboot/alt/x86_64/compute//kernel", "xcat/netboot/alt/x86_64/compute/kernel"},
		{"./a/./b", "a/b"},
		{`boot\x64\wdsnbp.com`, "boot/x64/wdsnbp.com"},
		{"a/", "a"},
		{"...", "..."},
		{"a..b", "a..b"},
		{"%2e%2e/etc/passwd", "%2e%2e/etc/passwd"}, // TFTP does not decode: a literal name
	}
	for _, tt := range tests {
		got, err := tftp.CleanName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []string{
		"", "/", "//", ".", "..", "../etc/passwd", "/../etc/passwd", "a/../../b", "a/..",
		`..\..\windows`, "a\x00b", "a\nb", "a\x7fb", strings.Repeat("a", tftp.MaxNameLen+1),
	}
	for _, in := range bad {
		if got, err := tftp.CleanName(in); !errors.Is(err, tftp.ErrBadName) {
			t.Errorf("CleanName(%q) = %q, %v; want ErrBadName", in, got, err)
		}
	}
}

// FuzzCleanName checks that a cleaned name is a valid fs path without "..", and that
// cleaning is idempotent.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"pxelinux.0", "/a//b/./c", "../x", `a\..\b`, "a\x00", "....//...."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := tftp.CleanName(in)
		if err != nil {
			if !errors.Is(err, tftp.ErrBadName) {
				t.Fatalf("CleanName(%q) error %v does not wrap ErrBadName", in, err)
			}
			return
		}
		if !fs.ValidPath(got) || got == "." {
			t.Fatalf("CleanName(%q) = %q, not a valid path", in, got)
		}
		for _, e := range strings.Split(got, "/") {
			if e == ".." {
				t.Fatalf("CleanName(%q) = %q has ..", in, got)
			}
		}
		if again, err := tftp.CleanName(got); err != nil || again != got {
			t.Fatalf("CleanName(%q) = %q, %v; want it unchanged", got, again, err)
		}
	})
}
