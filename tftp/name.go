package tftp

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// MaxNameLen is the longest file name a client may request, in bytes.
const MaxNameLen = 1024

// ErrBadName is wrapped by the errors of CleanName: the name would leave the boot root or
// is not a name at all. TFTP answers it with an access violation, HTTP with 400.
var ErrBadName = errors.New("bad file name")

// CleanName turns a name a client requested into a path relative to the boot root, in
// the form fs.ValidPath accepts. Leading slashes are dropped (as tftpd-hpa -s does, so
// "/boot/grub2/grub.cfg" is the same file as "boot/grub2/grub.cfg"), backslashes become
// slashes, and empty and "." elements vanish (xCAT's "compute//kernel" works). A ".."
// element, a NUL or other control byte, an empty result or a name longer than MaxNameLen
// is refused with an error wrapping ErrBadName.
func CleanName(name string) (string, error) {
	if len(name) > MaxNameLen {
		return "", fmt.Errorf("tftp: name of %d bytes (longest %d): %w", len(name), MaxNameLen, ErrBadName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("tftp: name %q has control byte %#02x: %w", name, c, ErrBadName)
		}
	}
	clean := strings.ReplaceAll(name, `\`, "/")
	if !needsCleaning(clean) {
		return clean, nil
	}
	elems := strings.Split(clean, "/")
	out := elems[:0]
	for _, e := range elems {
		switch e {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("tftp: name %q has a .. element: %w", name, ErrBadName)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return "", fmt.Errorf("tftp: name %q names no file: %w", name, ErrBadName)
	}
	clean = strings.Join(out, "/")
	if !fs.ValidPath(clean) {
		// Unreachable by construction; kept as a guard for the confinement promise.
		return "", fmt.Errorf("tftp: name %q: %w", name, ErrBadName)
	}
	return clean, nil
}

// needsCleaning reports whether s is not already a valid, clean relative path.
func needsCleaning(s string) bool {
	return s == "" || s == "." || !fs.ValidPath(s)
}
