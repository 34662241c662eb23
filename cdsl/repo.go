package cdsl

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Repo is the CDSL infrastructure of one root tree (an image). Its methods are safe for
// concurrent use; mutating ones also hold an flock(2) on the root directory so that several
// processes (provctl invocations, a server) never interleave their changes.
//
// Every file system access goes through an os.Root, so nothing outside the root is ever read
// or written, whatever symbolic links the image holds.
type Repo struct {
	dir  string
	root *os.Root

	mu  sync.Mutex
	inv *inventory

	// failAt, when set (by tests), makes an operation fail at the named step, after the
	// changes before it, to exercise the rollback.
	failAt func(step string) error
}

func (r *Repo) step(name string) error {
	if r.failAt == nil {
		return nil
	}
	return r.failAt(name)
}

// Create sets up the infrastructure in the root directory dir: the per-node trees
// (Tree/<node>/ for each node and Tree/default/), the shared tree, the Link mount point and
// the inventory file. It is idempotent: an existing infrastructure is kept and only nodes
// that have no tree yet are added (see AddNodes).
func Create(dir string, nodes ...string) (*Repo, error) {
	for _, n := range nodes {
		if err := ValidNode(n); err != nil {
			return nil, fmt.Errorf("cdsl: create in %s: %w", dir, err)
		}
	}
	r, err := openRoot(dir)
	if err != nil {
		return nil, err
	}
	if err := r.create(); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.AddNodes(nodes...); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Repo) create() error {
	unlock, err := r.lockNoLoad()
	if err != nil {
		return err
	}
	defer unlock()
	data, err := r.root.ReadFile(DefaultInventory)
	switch {
	case err == nil:
		inv, err := parseInventory(data)
		if err != nil {
			return fmt.Errorf("cdsl: %s: %w", r.dir, err)
		}
		r.inv = inv
		return r.ensureDirs()
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cdsl: %w", err)
	}
	l := DefaultLayout
	for _, p := range []string{l.Tree, l.SharedTree, l.Link} {
		if fi, err := r.root.Lstat(p); err == nil && !fi.IsDir() {
			return fmt.Errorf("cdsl: create in %s: %s exists and is not a directory", r.dir, p)
		}
	}
	r.inv = &inventory{Layout: l}
	if err := r.ensureDirs(); err != nil {
		return err
	}
	return r.writeInventory(r.inv)
}

// ensureDirs creates the infrastructure directories that are missing.
func (r *Repo) ensureDirs() error {
	l := r.inv.Layout
	for _, p := range []string{l.Tree, join(l.Tree, l.Default), l.SharedTree, l.Link} {
		if err := r.root.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("cdsl: create %s: %w", p, err)
		}
	}
	return nil
}

// Open opens the infrastructure of the root directory dir. It fails with ErrNoInventory when
// Create was never run there.
func Open(dir string) (*Repo, error) {
	r, err := openRoot(dir)
	if err != nil {
		return nil, err
	}
	data, err := r.root.ReadFile(DefaultInventory)
	if errors.Is(err, fs.ErrNotExist) {
		r.Close()
		return nil, fmt.Errorf("cdsl: %s: %w (%s missing)", dir, ErrNoInventory, DefaultInventory)
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("cdsl: %w", err)
	}
	inv, err := parseInventory(data)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("cdsl: %s: %w", dir, err)
	}
	r.inv = inv
	return r, nil
}

func openRoot(dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cdsl: %w", err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("cdsl: %w", err)
	}
	return &Repo{dir: abs, root: root}, nil
}

// Close releases the root directory.
func (r *Repo) Close() error { return r.root.Close() }

// Dir is the root directory.
func (r *Repo) Dir() string { return r.dir }

// Layout is the infrastructure's layout as the inventory records it.
func (r *Repo) Layout() Layout {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inv.Layout
}

// List returns the CDSLs, sorted by path.
func (r *Repo) List() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inv.clone().Entries
}

// Get returns the CDSL at p (ErrNotCDSL when there is none).
func (r *Repo) Get(p string) (Entry, error) {
	c, err := CleanPath(p)
	if err != nil {
		return Entry{}, fmt.Errorf("cdsl: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.inv.find(c)
	if !ok {
		return Entry{}, fmt.Errorf("cdsl: %s: %w", c, ErrNotCDSL)
	}
	e.Nodes = slices.Clone(e.Nodes)
	return e, nil
}

// Reload rereads the inventory (another process may have changed it).
func (r *Repo) Reload() error {
	unlock, err := r.lock()
	if err != nil {
		return err
	}
	unlock()
	return nil
}

// Nodes lists the nodes that have a tree, sorted (the default tree is not a node).
func (r *Repo) Nodes() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes()
}

func (r *Repo) nodes() ([]string, error) {
	d, err := r.root.Open(r.inv.Layout.Tree)
	if err != nil {
		return nil, fmt.Errorf("cdsl: %w", err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("cdsl: read %s: %w", r.inv.Layout.Tree, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && e.Name() != r.inv.Layout.Default && ValidNode(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// lock takes the in-process mutex and the flock on the root, then rereads the inventory.
func (r *Repo) lock() (func(), error) {
	unlock, err := r.lockNoLoad()
	if err != nil {
		return nil, err
	}
	data, err := r.root.ReadFile(DefaultInventory)
	if err != nil {
		unlock()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cdsl: %s: %w", r.dir, ErrNoInventory)
		}
		return nil, fmt.Errorf("cdsl: %w", err)
	}
	inv, err := parseInventory(data)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("cdsl: %s: %w", r.dir, err)
	}
	r.inv = inv
	return unlock, nil
}

func (r *Repo) lockNoLoad() (func(), error) {
	r.mu.Lock()
	d, err := r.root.Open(".")
	if err != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("cdsl: %w", err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		d.Close()
		r.mu.Unlock()
		return nil, fmt.Errorf("cdsl: lock %s: %w", r.dir, err)
	}
	return func() {
		_ = unix.Flock(int(d.Fd()), unix.LOCK_UN)
		d.Close()
		r.mu.Unlock()
	}, nil
}

// writeInventory replaces the inventory file atomically.
func (r *Repo) writeInventory(inv *inventory) error {
	tmp := DefaultInventory + ".tmp-" + randHex()
	f, err := r.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("cdsl: write inventory: %w", err)
	}
	_, err = f.Write(inv.marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.root.Rename(tmp, DefaultInventory)
	}
	if err != nil {
		_ = r.root.Remove(tmp)
		return fmt.Errorf("cdsl: write inventory: %w", err)
	}
	r.inv = inv
	return nil
}

// undo collects compensating actions run in reverse order when an operation fails half way.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// AddNodes gives each new node a tree: a copy of the default tree, so it starts with the
// default version of every host-dependent path. Nodes that already have a tree are left
// alone. Invalid ids are refused before anything changes.
func (r *Repo) AddNodes(ids ...string) (err error) {
	for _, id := range ids {
		if err := ValidNode(id); err != nil {
			return fmt.Errorf("cdsl: add nodes: %w", err)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	unlock, err := r.lock()
	if err != nil {
		return err
	}
	defer unlock()
	l := r.inv.Layout
	var u undo
	defer func() {
		if err != nil {
			u.run()
		}
	}()
	inv := r.inv.clone()
	added := map[string]bool{}
	for _, id := range ids {
		dst := join(l.Tree, id)
		if _, err := r.root.Lstat(dst); err == nil || added[id] {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cdsl: add node %s: %w", id, err)
		}
		if err := copyTree(r.root, join(l.Tree, l.Default), dst); err != nil {
			_ = r.root.RemoveAll(dst)
			return fmt.Errorf("cdsl: add node %s: %w", id, err)
		}
		u.add(func() { _ = r.root.RemoveAll(dst) })
		added[id] = true
		if err := r.step("add " + id); err != nil {
			return fmt.Errorf("cdsl: add node %s: %w", id, err)
		}
	}
	if len(added) == 0 {
		return nil
	}
	for i := range inv.Entries {
		e := &inv.Entries[i]
		for id := range added {
			e.Nodes = append(e.Nodes, id)
		}
		slices.Sort(e.Nodes)
		e.Nodes = slices.Compact(e.Nodes)
	}
	return r.writeInventory(inv)
}

// RemoveNode deletes a node's tree (its copies of the host-dependent paths).
func (r *Repo) RemoveNode(id string) error {
	if err := ValidNode(id); err != nil {
		return fmt.Errorf("cdsl: remove node: %w", err)
	}
	unlock, err := r.lock()
	if err != nil {
		return err
	}
	defer unlock()
	dst := join(r.inv.Layout.Tree, id)
	if _, err := r.root.Lstat(dst); err != nil {
		return fmt.Errorf("cdsl: remove node %s: %w", id, err)
	}
	inv := r.inv.clone()
	for i := range inv.Entries {
		inv.Entries[i].Nodes = slices.DeleteFunc(inv.Entries[i].Nodes, func(n string) bool { return n == id })
	}
	if err := r.writeInventory(inv); err != nil {
		return err
	}
	if err := r.root.RemoveAll(dst); err != nil {
		return fmt.Errorf("cdsl: remove node %s: %w", id, err)
	}
	return nil
}

// checkRealDirs verifies that every proper ancestor of p (below base) is a directory, not a
// symbolic link, so that the operation acts on the path the caller named.
func (r *Repo) checkRealDirs(p, base string) error {
	anc := parents(p)
	for i := len(anc) - 1; i >= 0; i-- {
		a := anc[i]
		if !under(a, base) || a == base {
			continue
		}
		fi, err := r.root.Lstat(a)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: %w (%s is a %s)", p, ErrSymlinkInPath, a, kind(fi))
		}
	}
	return nil
}

func kind(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symbolic link"
	case fi.IsDir():
		return "directory"
	case fi.Mode().IsRegular():
		return "file"
	}
	return "special file"
}

// linkTarget is the relative target of a symbolic link at from that reaches to (both
// relative to the root).
func linkTarget(from, to string) string {
	return upTo(dirOf(from)) + to
}

// swapForLink moves the object at p aside and puts a symbolic link to target in its place.
// It returns the temporary name of the old object.
func (r *Repo) swapForLink(p, target string, u *undo) (string, error) {
	tmp := join(dirOf(p), ".cdsl-old-"+filepath.Base(p)+"-"+randHex())
	if err := r.root.Rename(p, tmp); err != nil {
		return "", err
	}
	u.add(func() { _ = r.root.Rename(tmp, p) })
	if err := r.root.Symlink(target, p); err != nil {
		return "", err
	}
	u.add(func() { _ = r.root.Remove(p) })
	return tmp, nil
}

// MakeHostDependent makes p (relative to the root, a leading slash is allowed) host-dependent:
// its content is copied into every node's tree and the default tree, and p becomes a
// symbolic link through Link (…/cdsl.local/p), so a booted node sees its own copy.
//
// p must exist, must not lie in the infrastructure, must not traverse symbolic links, and
// must be neither a CDSL, inside one, nor contain one. On any error nothing is changed.
func (r *Repo) MakeHostDependent(p string) (err error) {
	c, err := CleanPath(p)
	if err != nil {
		return fmt.Errorf("cdsl: make host-dependent: %w", err)
	}
	unlock, err := r.lock()
	if err != nil {
		return err
	}
	defer unlock()
	wrap := func(err error) error { return fmt.Errorf("cdsl: make host-dependent %s: %w", c, err) }
	l := r.inv.Layout
	if l.reserved(c) {
		return wrap(fmt.Errorf("%w: inside the CDSL infrastructure", ErrInvalidPath))
	}
	if e, ok := r.inv.governing(c); ok {
		if e.Path == c {
			return wrap(fmt.Errorf("%w (%s)", ErrIsCDSL, e.Type))
		}
		return wrap(fmt.Errorf("%w: inside the %s CDSL %s", ErrNesting, e.Type, e.Path))
	}
	if ch := r.inv.children(c); len(ch) > 0 {
		return wrap(fmt.Errorf("%w: contains the CDSL %s", ErrNesting, ch[0].Path))
	}
	if err := r.checkRealDirs(c, ""); err != nil {
		return wrap(err)
	}
	if _, err := r.root.Lstat(c); err != nil {
		return wrap(err)
	}
	nodes, err := r.nodes()
	if err != nil {
		return err
	}
	trees := append([]string{l.Default}, nodes...)
	for _, t := range trees {
		dst := join(l.Tree, t, c)
		if _, err := r.root.Lstat(dst); err == nil {
			return wrap(fmt.Errorf("%w: %s already exists", fs.ErrExist, dst))
		}
		if err := r.checkRealDirs(dst, join(l.Tree, t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(err)
		}
	}

	var u undo
	defer func() {
		if err != nil {
			u.run()
		}
	}()
	for _, t := range trees {
		base := join(l.Tree, t)
		dst := join(base, c)
		top, err := mkdirParents(r.root, dst, base, "")
		if top != "" {
			u.add(func() { _ = r.root.RemoveAll(top) })
		}
		if err != nil {
			return wrap(err)
		}
		u.add(func() { _ = r.root.RemoveAll(dst) })
		if err := copyTree(r.root, c, dst); err != nil {
			return wrap(err)
		}
		if err := r.step("copy " + t); err != nil {
			return wrap(err)
		}
	}
	old, err := r.swapForLink(c, linkTarget(c, join(l.Link, c)), &u)
	if err != nil {
		return wrap(err)
	}
	if err := r.step("inventory"); err != nil {
		return wrap(err)
	}
	inv := r.inv.clone()
	inv.add(Entry{Path: c, Type: HostDependent, Nodes: nodes, Time: now()})
	if err := r.writeInventory(inv); err != nil {
		return wrap(err)
	}
	if err := r.root.RemoveAll(old); err != nil {
		return fmt.Errorf("cdsl: made %s host-dependent, but could not remove the old copy %s: %w", c, old, err)
	}
	return nil
}

// MakeShared makes p, which lies inside a host-dependent CDSL, shared again: the default
// tree's copy moves to the shared tree and every node's copy becomes a symbolic link to it
// (a node's own changes to its copy are discarded, as the shared version replaces them).
// On any error nothing is changed.
func (r *Repo) MakeShared(p string) (err error) {
	c, err := CleanPath(p)
	if err != nil {
		return fmt.Errorf("cdsl: make shared: %w", err)
	}
	unlock, err := r.lock()
	if err != nil {
		return err
	}
	defer unlock()
	wrap := func(err error) error { return fmt.Errorf("cdsl: make shared %s: %w", c, err) }
	l := r.inv.Layout
	if l.reserved(c) {
		return wrap(fmt.Errorf("%w: inside the CDSL infrastructure", ErrInvalidPath))
	}
	e, ok := r.inv.governing(c)
	switch {
	case ok && e.Path == c:
		return wrap(fmt.Errorf("%w (%s)", ErrIsCDSL, e.Type))
	case !ok || e.Type != HostDependent:
		return wrap(fmt.Errorf("%w: a shared path must lie inside a host-dependent CDSL", ErrNesting))
	}
	if ch := r.inv.children(c); len(ch) > 0 {
		return wrap(fmt.Errorf("%w: contains the CDSL %s", ErrNesting, ch[0].Path))
	}
	defTree := join(l.Tree, l.Default)
	src := join(defTree, c)
	if err := r.checkRealDirs(src, defTree); err != nil {
		return wrap(err)
	}
	if _, err := r.root.Lstat(src); err != nil {
		return wrap(err)
	}
	dst := join(l.SharedTree, c)
	if _, err := r.root.Lstat(dst); err == nil {
		return wrap(fmt.Errorf("%w: %s already exists", fs.ErrExist, dst))
	}
	if err := r.checkRealDirs(dst, l.SharedTree); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrap(err)
	}
	nodes, err := r.nodes()
	if err != nil {
		return err
	}
	trees := append([]string{l.Default}, nodes...)
	for _, t := range trees {
		if err := r.checkRealDirs(join(l.Tree, t, c), join(l.Tree, t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(err)
		}
	}

	var u undo
	defer func() {
		if err != nil {
			u.run()
		}
	}()
	top, err := mkdirParents(r.root, dst, l.SharedTree, defTree)
	if top != "" {
		u.add(func() { _ = r.root.RemoveAll(top) })
	}
	if err != nil {
		return wrap(err)
	}
	u.add(func() { _ = r.root.RemoveAll(dst) })
	if err := copyTree(r.root, src, dst); err != nil {
		return wrap(err)
	}
	var olds []string
	for _, t := range trees {
		base := join(l.Tree, t)
		np := join(base, c)
		target := linkTarget(np, dst)
		if _, err := r.root.Lstat(np); err == nil {
			old, err := r.swapForLink(np, target, &u)
			if err != nil {
				return wrap(err)
			}
			olds = append(olds, old)
			continue
		}
		top, err := mkdirParents(r.root, np, base, defTree)
		if top != "" {
			u.add(func() { _ = r.root.RemoveAll(top) })
		}
		if err != nil {
			return wrap(err)
		}
		if err := r.root.Symlink(target, np); err != nil {
			return wrap(err)
		}
		u.add(func() { _ = r.root.Remove(np) })
	}
	if err := r.step("inventory"); err != nil {
		return wrap(err)
	}
	inv := r.inv.clone()
	inv.add(Entry{Path: c, Type: Shared, Nodes: nodes, Time: now()})
	if err := r.writeInventory(inv); err != nil {
		return wrap(err)
	}
	for _, old := range olds {
		if err := r.root.RemoveAll(old); err != nil {
			return fmt.Errorf("cdsl: made %s shared, but could not remove the old copy %s: %w", c, old, err)
		}
	}
	return nil
}

// Remove undoes the CDSL at p. A host-dependent path becomes a plain copy of node from's
// version (the default tree's when from is ""), and every node's copy is deleted; a shared
// path becomes a plain copy in every node's tree again. CDSLs nested below p must be removed
// first. On any error before the inventory changes, nothing is changed.
func (r *Repo) Remove(p, from string) (err error) {
	c, err := CleanPath(p)
	if err != nil {
		return fmt.Errorf("cdsl: remove: %w", err)
	}
	if from != "" {
		if err := ValidNode(from); err != nil {
			return fmt.Errorf("cdsl: remove %s: %w", c, err)
		}
	}
	unlock, err := r.lock()
	if err != nil {
		return err
	}
	defer unlock()
	wrap := func(err error) error { return fmt.Errorf("cdsl: remove %s: %w", c, err) }
	l := r.inv.Layout
	e, ok := r.inv.find(c)
	if !ok {
		return wrap(ErrNotCDSL)
	}
	if ch := r.inv.children(c); len(ch) > 0 {
		return wrap(fmt.Errorf("%w: remove %s first", ErrHasChildren, ch[0].Path))
	}
	nodes, err := r.nodes()
	if err != nil {
		return err
	}
	trees := append([]string{l.Default}, nodes...)
	var u undo
	defer func() {
		if err != nil {
			u.run()
		}
	}()
	var garbage []string
	switch e.Type {
	case HostDependent:
		tree := l.Default
		if from != "" {
			if !slices.Contains(nodes, from) {
				return wrap(fmt.Errorf("node %s has no tree", from))
			}
			tree = from
		}
		src := join(l.Tree, tree, c)
		if _, err := r.root.Lstat(src); err != nil {
			return wrap(err)
		}
		if fi, err := r.root.Lstat(c); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return wrap(fmt.Errorf("%s is not the CDSL's symbolic link; run Check", c))
		}
		tmp := join(dirOf(c), ".cdsl-new-"+filepath.Base(c)+"-"+randHex())
		u.add(func() { _ = r.root.RemoveAll(tmp) })
		if err := copyTree(r.root, src, tmp); err != nil {
			return wrap(err)
		}
		target, err := r.root.Readlink(c)
		if err != nil {
			return wrap(err)
		}
		if err := r.root.Remove(c); err != nil {
			return wrap(err)
		}
		u.add(func() { _ = r.root.Symlink(target, c) })
		if err := r.root.Rename(tmp, c); err != nil {
			return wrap(err)
		}
		u.add(func() { _ = r.root.Rename(c, tmp) })
		for _, t := range trees {
			garbage = append(garbage, join(l.Tree, t, c))
		}
	case Shared:
		src := join(l.SharedTree, c)
		if _, err := r.root.Lstat(src); err != nil {
			return wrap(err)
		}
		for _, t := range trees {
			np := join(l.Tree, t, c)
			tmp := join(dirOf(np), ".cdsl-new-"+filepath.Base(np)+"-"+randHex())
			u.add(func() { _ = r.root.RemoveAll(tmp) })
			if err := copyTree(r.root, src, tmp); err != nil {
				return wrap(err)
			}
			if target, err := r.root.Readlink(np); err == nil {
				if err := r.root.Remove(np); err != nil {
					return wrap(err)
				}
				u.add(func() { _ = r.root.Symlink(target, np) })
			} else if _, err := r.root.Lstat(np); err == nil {
				return wrap(fmt.Errorf("%s is not a symbolic link to the shared tree; run Check", np))
			}
			if err := r.root.Rename(tmp, np); err != nil {
				return wrap(err)
			}
			u.add(func() { _ = r.root.Rename(np, tmp) })
		}
		garbage = append(garbage, src)
	}
	if err := r.step("inventory"); err != nil {
		return wrap(err)
	}
	inv := r.inv.clone()
	inv.remove(c)
	if err := r.writeInventory(inv); err != nil {
		return wrap(err)
	}
	var errs []error
	for _, g := range garbage {
		if err := r.root.RemoveAll(g); err != nil {
			errs = append(errs, err)
		}
		r.pruneEmpty(dirOf(g))
	}
	if len(errs) > 0 {
		return fmt.Errorf("cdsl: removed %s, but left copies behind: %w", c, errors.Join(errs...))
	}
	return nil
}

// pruneEmpty removes d and its parents while they are empty directories below a tree.
func (r *Repo) pruneEmpty(d string) {
	l := r.inv.Layout
	stop := func(d string) bool {
		return d == "" || d == l.Tree || d == l.SharedTree || dirOf(d) == l.Tree
	}
	for ; !stop(d); d = dirOf(d) {
		if !under(d, l.Tree) && !under(d, l.SharedTree) {
			return
		}
		if r.root.Remove(d) != nil { // fails unless empty
			return
		}
	}
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// now is the time recorded for a new CDSL, at the inventory's millisecond precision.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
