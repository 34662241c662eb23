package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// An entry is one file of a tree being packed, with what the archive formats need.
type entry struct {
	rel    string // slash-separated path relative to the root; "." for the root itself
	st     unix.Stat_t
	link   string  // symlink target
	xattrs []xattr // sorted by name; only read when the format can hold them
}

type xattr struct {
	name  string
	value []byte
}

func (e *entry) typ() uint32 { return e.st.Mode & unix.S_IFMT }

// walker visits a directory tree depth-first in pre-order, the entries of each directory
// sorted by byte order of their names, so that the same tree always gives the same
// sequence. A directory comes before its contents, as unpackers (the kernel's initramfs
// code among them) need.
type walker struct {
	root    string
	exclude *excluder
	// oneFS keeps the walk on the root's filesystem, like find -xdev: a mount point is
	// listed as a directory, without what is mounted on it.
	oneFS  bool
	xattrs bool
	fn     func(*entry) error
}

func (w *walker) walk(ctx context.Context) error {
	var st unix.Stat_t
	if err := unix.Lstat(w.root, &st); err != nil {
		return fmt.Errorf("image: root %s: %w", w.root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("image: root %s: not a directory", w.root)
	}
	e := &entry{rel: ".", st: st}
	if err := w.readXattrs(w.root, e); err != nil {
		return err
	}
	if err := w.fn(e); err != nil {
		return err
	}
	return w.dir(ctx, w.root, ".", st.Dev)
}

func (w *walker) dir(ctx context.Context, abs, rel string, dev uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("image: walk %s: %w", w.root, err)
	}
	names, err := readDirNames(abs)
	if err != nil {
		return fmt.Errorf("image: read directory %s: %w", abs, err)
	}
	for _, name := range names {
		childAbs := abs + "/" + name
		childRel := name
		if rel != "." {
			childRel = rel + "/" + name
		}
		var st unix.Stat_t
		if err := unix.Lstat(childAbs, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed while we walked
			}
			return fmt.Errorf("image: %s: %w", childAbs, err)
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if w.exclude.excluded(childRel, isDir) {
			// With "+" patterns something below may be put back: look inside.
			if isDir && w.exclude.hasIncludes() && (!w.oneFS || st.Dev == dev) {
				if err := w.dir(ctx, childAbs, childRel, dev); err != nil {
					return err
				}
			}
			continue
		}
		e := &entry{rel: childRel, st: st}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if e.link, err = os.Readlink(childAbs); err != nil {
				return fmt.Errorf("image: %s: %w", childAbs, err)
			}
		}
		if err := w.readXattrs(childAbs, e); err != nil {
			return err
		}
		if err := w.fn(e); err != nil {
			return err
		}
		if isDir && (!w.oneFS || st.Dev == dev) {
			if err := w.dir(ctx, childAbs, childRel, dev); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDirNames returns the names in a directory in byte order.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

func (w *walker) readXattrs(abs string, e *entry) error {
	if !w.xattrs {
		return nil
	}
	xs, err := listXattrs(abs)
	if err != nil {
		return fmt.Errorf("image: xattrs of %s: %w", abs, err)
	}
	e.xattrs = xs
	return nil
}

// listXattrs reads the extended attributes of path (not following symlinks), sorted by
// name. A filesystem without xattr support gives none.
func listXattrs(p string) ([]xattr, error) {
	buf := make([]byte, 1024)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []xattr
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 256)
		for {
			m, err := unix.Lgetxattr(p, name, val)
			if errors.Is(err, unix.ERANGE) {
				val = make([]byte, len(val)*4)
				continue
			}
			if errors.Is(err, unix.ENODATA) {
				val = nil
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			val = val[:m]
			break
		}
		if val != nil {
			out = append(out, xattr{name: name, value: val})
		}
	}
	slices.SortFunc(out, func(a, b xattr) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// treeSize returns the bytes of regular-file data and the number of entries the walker
// would visit; it is the total a progress bar counts towards.
func treeSize(ctx context.Context, root string, ex *excluder, oneFS bool) (bytes int64, n int64, err error) {
	w := &walker{root: root, exclude: ex, oneFS: oneFS, fn: func(e *entry) error {
		n++
		if e.typ() == unix.S_IFREG {
			bytes += e.st.Size
		}
		return nil
	}}
	err = w.walk(ctx)
	return bytes, n, err
}

// excluder decides which paths of a tree are left out of a packed image, with the
// semantics of xCAT's exlist: each pattern is a shell pattern matched against the path
// relative to the root written as "./usr/share/man/..."; "*" also matches "/" (like
// find -path), so "./usr/share/man*" leaves out the directory and all below it. A
// pattern that starts with "+" puts matching paths back in, as xCAT does for
// "+./usr/share/locale/C*". Patterns are tried in order and the last match wins.
type excluder struct {
	patterns []pattern
}

type pattern struct {
	include bool
	glob    string
}

// newExcluder checks the patterns; a bad one is an error naming it.
func newExcluder(patterns []string) (*excluder, error) {
	ex := &excluder{}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		inc := strings.HasPrefix(p, "+")
		g := strings.TrimPrefix(p, "+")
		g = normPattern(g)
		if _, err := matchGlob(g, "x"); err != nil {
			return nil, fmt.Errorf("image: exclude pattern %q: %w", p, err)
		}
		ex.patterns = append(ex.patterns, pattern{include: inc, glob: g})
	}
	if len(ex.patterns) == 0 {
		return nil, nil
	}
	return ex, nil
}

// normPattern writes a pattern in the "./rel/path" form the matcher compares with:
// "/usr/share/doc/*", "usr/share/doc/*" and "./usr/share/doc/*" are the same pattern.
func normPattern(g string) string {
	g = strings.TrimPrefix(g, "./")
	g = strings.TrimLeft(g, "/")
	return "./" + g
}

func (ex *excluder) hasIncludes() bool {
	if ex == nil {
		return false
	}
	for _, p := range ex.patterns {
		if p.include {
			return true
		}
	}
	return false
}

func (ex *excluder) excluded(rel string, isDir bool) bool {
	if ex == nil {
		return false
	}
	p := "./" + rel
	out := false
	for _, pt := range ex.patterns {
		ok, _ := matchGlob(pt.glob, p)
		if !ok && isDir {
			// "./var/cache/" written with a trailing slash names the directory.
			ok, _ = matchGlob(strings.TrimSuffix(pt.glob, "/"), p)
		}
		if ok {
			out = !pt.include
		}
	}
	return out
}

// errBadPattern is returned for a malformed bracket expression.
var errBadPattern = errors.New("syntax error in pattern")

// matchGlob is fnmatch(3) without FNM_PATHNAME: "*" and "?" match any character,
// "/" included; "[...]" is a character class ("[!...]" or "[^...]" negated); "\\"
// quotes the next character. Characters are UTF-8 runes; bytes that are not valid
// UTF-8 count as one character each.
func matchGlob(pattern, name string) (bool, error) {
	// Iterative matcher with backtracking to the last star, linear in practice.
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for nx < len(name) || px < len(pattern) {
		if px < len(pattern) {
			_, nw := utf8.DecodeRuneInString(name[nx:])
			switch c := pattern[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx += nw
					continue
				}
			case '[':
				if nx < len(name) {
					r, _ := utf8.DecodeRuneInString(name[nx:])
					ok, width, err := matchClass(pattern[px:], r)
					if err != nil {
						return false, err
					}
					if ok {
						px += width
						nx += nw
						continue
					}
				} else if _, _, err := matchClass(pattern[px:], -1); err != nil {
					return false, err
				}
			case '\\':
				if px+1 >= len(pattern) {
					return false, errBadPattern
				}
				_, pw := utf8.DecodeRuneInString(pattern[px+1:])
				if nx < len(name) && name[nx:nx+nw] == pattern[px+1:px+1+pw] {
					px += 1 + pw
					nx += nw
					continue
				}
			default:
				_, pw := utf8.DecodeRuneInString(pattern[px:])
				if nx < len(name) && name[nx:nx+nw] == pattern[px:px+pw] {
					px += pw
					nx += nw
					continue
				}
			}
		}
		if starPx >= 0 && starNx < len(name) {
			_, w := utf8.DecodeRuneInString(name[starNx:])
			starNx += w
			px, nx = starPx+1, starNx
			continue
		}
		// Validate the rest of the pattern so that errors do not depend on the name.
		if err := checkPattern(pattern[px:]); err != nil {
			return false, err
		}
		return false, nil
	}
	return true, nil
}

func checkPattern(p string) error {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '[':
			_, w, err := matchClass(p[i:], -1)
			if err != nil {
				return err
			}
			i += w - 1
		case '\\':
			if i+1 >= len(p) {
				return errBadPattern
			}
			i++
		}
	}
	return nil
}

// matchClass matches c against the bracket expression at the start of p and returns
// the expression's width in bytes.
func matchClass(p string, c rune) (ok bool, width int, err error) {
	i := 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	next := func() (rune, bool) {
		if i >= len(p) {
			return 0, false
		}
		if p[i] == '\\' {
			i++
			if i >= len(p) {
				return 0, false
			}
		}
		r, w := utf8.DecodeRuneInString(p[i:])
		i += w
		return r, true
	}
	first := true
	for {
		if i >= len(p) {
			return false, 0, errBadPattern
		}
		if p[i] == ']' && !first {
			i++
			break
		}
		first = false
		lo, ok2 := next()
		if !ok2 {
			return false, 0, errBadPattern
		}
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			i++
			if hi, ok2 = next(); !ok2 {
				return false, 0, errBadPattern
			}
		}
		if lo <= c && c <= hi {
			ok = true
		}
	}
	return ok != neg, i, nil
}

// relJoin joins a root and a slash-separated relative path from an archive.
func relJoin(root, rel string) string {
	if rel == "." {
		return root
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}
