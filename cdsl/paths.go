package cdsl

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; operations wrap them with the path or node they concern.
var (
	// ErrInvalidPath: a path is empty, the root, contains "..", a NUL byte, or lies in the
	// CDSL infrastructure itself.
	ErrInvalidPath = errors.New("invalid path")
	// ErrInvalidNode: a node id is empty, ".", "..", the default tree's name, or contains '/',
	// white space or a control character.
	ErrInvalidNode = errors.New("invalid node id")
	// ErrNoInventory: the root has no CDSL inventory (Create was never run on it).
	ErrNoInventory = errors.New("no CDSL inventory")
	// ErrNotCDSL: the path is not in the inventory.
	ErrNotCDSL = errors.New("not a CDSL")
	// ErrIsCDSL: the path is already in the inventory.
	ErrIsCDSL = errors.New("already a CDSL")
	// ErrNesting: the operation does not fit the path's parents (a host-dependent path inside
	// a host-dependent area, or a shared path outside one).
	ErrNesting = errors.New("wrong CDSL nesting")
	// ErrHasChildren: a CDSL to remove has CDSLs below it; remove those first.
	ErrHasChildren = errors.New("CDSL has nested CDSLs")
	// ErrSymlinkInPath: a parent directory of the path is a symbolic link; CDSLs are made on
	// real paths only.
	ErrSymlinkInPath = errors.New("path traverses a symbolic link")
)

// CleanPath returns p in the form the inventory stores: relative to the root, without
// leading or trailing slashes and without "." components. It refuses the root itself, ".."
// components and NUL bytes.
func CleanPath(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("path %q: %w: contains a NUL byte", p, ErrInvalidPath)
	}
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, c := range parts {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("path %q: %w: contains \"..\"", p, ErrInvalidPath)
		}
		if len(c) > 255 {
			return "", fmt.Errorf("path %q: %w: component longer than 255 bytes", p, ErrInvalidPath)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return "", fmt.Errorf("path %q: %w: it is the root", p, ErrInvalidPath)
	}
	return strings.Join(out, "/"), nil
}

// ValidNode reports whether id can name a node's tree: a single path component of printable,
// non-space ASCII or UTF-8 that is not ".", ".." or the default tree's name.
func ValidNode(id string) error {
	if id == "" || id == "." || id == ".." || id == DefaultNode || len(id) > 255 {
		return fmt.Errorf("node %q: %w", id, ErrInvalidNode)
	}
	for _, r := range id {
		if r == '/' || r <= ' ' || r == 0x7f || r == '\uFFFD' {
			return fmt.Errorf("node %q: %w: contains %q", id, ErrInvalidNode, r)
		}
	}
	return nil
}

// under reports whether p is dir or lies below it (both clean relative paths; dir "" is the
// root and contains everything).
func under(p, dir string) bool {
	if dir == "" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/") && len(p) > len(dir)
}

// parents yields the proper ancestors of p, longest first: "a/b/c" gives "a/b", "a".
func parents(p string) []string {
	var out []string
	for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
		out = append(out, p[:i])
	}
	return out
}

// depth is the number of components of a clean relative path ("" has 0).
func depth(p string) int {
	if p == "" {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// upTo returns the relative prefix that climbs from directory dir to the root:
// "a/b" gives "../../".
func upTo(dir string) string {
	return strings.Repeat("../", depth(dir))
}

// dirOf is path.Dir for clean relative paths, with "" for a top-level name.
func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// join joins clean relative paths, skipping empty ones.
func join(elem ...string) string {
	var b strings.Builder
	for _, e := range elem {
		if e == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(e)
	}
	return b.String()
}
