package nfsroot

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/cdsl"
)

// Export is one image served to nodes.
type Export struct {
	// Path is the name clients mount, absolute ("/images/compute"). A directory below it
	// may be mounted too ("/images/compute/usr").
	Path string
	// Root is the image's directory on the server. It is served read-only; when it holds a
	// CDSL inventory (package cdsl), every node sees its own host-dependent paths.
	Root string
	// Writable lists the paths of the image (absolute inside it, like "/var", "/tmp",
	// "/root", "/etc/adjtime") of which each node gets its own writable copy, kept in
	// StateDir/<node>/<path>. A node's copy is seeded from the image, with that node's CDSLs
	// resolved, the first time the node mounts; it persists across reboots (xCAT statelite's
	// "persistent", Kerrighed's per-node rw /var). Paths may not overlap.
	Writable []string
	// StateDir holds the nodes' writable copies; required when Writable is not empty.
	StateDir string
	// Clients are the networks whose hosts may mount the export; a client outside them
	// cannot mount or use handles of this export. Empty means nobody.
	Clients []netip.Prefix
}

// layer is where a path of a node's view lives: the image, or the node's state directory.
type layer int8

const (
	layerBase layer = iota
	layerState
)

// loc is a resolved path: rel is relative to the layer's directory.
type loc struct {
	layer layer
	rel   string
}

// export is an Export being served.
type export struct {
	cfg      Export
	path     string // clean mount path, "/x/y"
	id       uint32
	rootFD   int // O_PATH directory of Root
	table    *table
	writable []string // clean view paths, sorted
	isWrit   map[string]bool
	// synth maps a directory to the writable roots in it, listed even if the image lacks them.
	synth map[string][]string
	// cs is what the export knows of the image's CDSLs, replaced whole when the inventory
	// changes (checked at most every refresh).
	cs        atomic.Pointer[cdslState]
	refresh   time.Duration
	nextCheck atomic.Int64

	baseIndex sync.Once
	cache     *mdcache   // of the image (layerBase); nil when disabled
	files     *fileCache // open files for READ, shared by the exports of a Serve; nil: none

	mu    sync.RWMutex
	views map[string]*view
}

// newExport validates e and opens its root. cacheTTL is Server.CacheTTL.
func newExport(e Export, cacheTTL time.Duration) (*export, error) {
	x := &export{cfg: e, rootFD: -1, isWrit: map[string]bool{},
		synth: map[string][]string{}, views: map[string]*view{}}
	if !strings.HasPrefix(e.Path, "/") {
		return nil, fmt.Errorf("nfsroot: export path %q: must be absolute", e.Path)
	}
	if e.Path == "/" {
		x.path = "/"
	} else {
		c, err := cdsl.CleanPath(e.Path)
		if err != nil {
			return nil, fmt.Errorf("nfsroot: export path: %w", err)
		}
		x.path = "/" + c
	}
	x.id = exportID(x.path)
	if e.Root == "" {
		return nil, fmt.Errorf("nfsroot: export %s: no Root", x.path)
	}
	if len(e.Writable) > 0 && e.StateDir == "" {
		return nil, fmt.Errorf("nfsroot: export %s: Writable paths need a StateDir", x.path)
	}
	for _, p := range e.Clients {
		if !p.IsValid() {
			return nil, fmt.Errorf("nfsroot: export %s: invalid client prefix %v", x.path, p)
		}
	}
	fd, err := unix.Open(e.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("nfsroot: export %s: root %s: %w", x.path, e.Root, err)
	}
	x.rootFD = fd
	x.refresh = defaultCacheTTL
	if cacheTTL > 0 {
		x.refresh = cacheTTL
	}
	snap, key, err := x.loadCDSL()
	if err != nil {
		x.close()
		return nil, err
	}
	for _, w := range e.Writable {
		c, err := cdsl.CleanPath(w)
		if err != nil {
			x.close()
			return nil, fmt.Errorf("nfsroot: export %s: writable: %w", x.path, err)
		}
		if snap != nil {
			l := snap.Layout()
			for _, r := range []string{l.Tree, l.SharedTree, l.Link, cdsl.DefaultInventory} {
				if within(c, r) || within(r, c) {
					x.close()
					return nil, fmt.Errorf("nfsroot: export %s: writable path %s overlaps the CDSL infrastructure %s", x.path, c, r)
				}
			}
		}
		for _, o := range x.writable {
			if within(c, o) || within(o, c) {
				x.close()
				return nil, fmt.Errorf("nfsroot: export %s: writable paths %s and %s overlap", x.path, o, c)
			}
		}
		if parent := parentOf(c); parent != "" {
			// The node's copy hangs below a directory of the image (CDSLs resolved as
			// for a node without a tree of its own).
			rel := parent
			if snap != nil {
				l := snap.Layout()
				rel = snap.Resolve(joinRel(l.Tree, l.Default), parent)
			}
			var st unix.Stat_t
			if err := statAtRel(x.rootFD, rel, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				x.close()
				return nil, fmt.Errorf("nfsroot: export %s: writable path %s: its directory /%s is not a directory of the image", x.path, c, parent)
			}
		}
		x.writable = append(x.writable, c)
		x.isWrit[c] = true
		x.synth[parentOf(c)] = append(x.synth[parentOf(c)], path.Base(c))
	}
	sort.Strings(x.writable)
	x.cs.Store(x.newCDSLState(snap, key))
	x.nextCheck.Store(time.Now().Add(x.refresh).UnixNano())
	x.table = newTable(rootID(x.path))
	x.cache = newMDCache(cacheTTL)
	return x, nil
}

// cdslState is the image's CDSL inventory as the export uses it.
type cdslState struct {
	snap *cdsl.Snapshot // nil: the image has no CDSLs
	tree string         // Layout.Tree, "" without CDSLs
	// special maps a directory's view path to the names in it that resolve differently
	// from "the same place as the directory, one level down": writable roots, CDSLs, the
	// CDSL mount point. The per-node tree directory (tree) is special as a whole: a node
	// sees only its own tree and the default one in it.
	special map[string]map[string]bool
	key     listingKey // the inventory file's identity when it was read
}

// loadCDSL reads the image's CDSL inventory (none is fine).
func (x *export) loadCDSL() (*cdsl.Snapshot, listingKey, error) {
	var key listingKey
	var st unix.Stat_t
	if err := statAt(x.rootFD, cdsl.DefaultInventory, &st); err == nil {
		key = listingKey{st.Ino, st.Mtim, st.Ctim, st.Size}
	}
	repo, err := cdsl.Open(x.cfg.Root)
	switch {
	case err == nil:
		defer repo.Close()
		return repo.Snapshot(), key, nil
	case errors.Is(err, cdsl.ErrNoInventory):
		return nil, key, nil
	}
	return nil, key, fmt.Errorf("nfsroot: export %s: %w", x.path, err)
}

func (x *export) newCDSLState(snap *cdsl.Snapshot, key listingKey) *cdslState {
	cs := &cdslState{snap: snap, special: map[string]map[string]bool{}, key: key}
	mark := func(p string) {
		dir := parentOf(p)
		if cs.special[dir] == nil {
			cs.special[dir] = map[string]bool{}
		}
		cs.special[dir][path.Base(p)] = true
	}
	for _, w := range x.writable {
		mark(w)
	}
	if snap != nil {
		l := snap.Layout()
		cs.tree = l.Tree
		for _, en := range snap.Entries() {
			mark(en.Path)
		}
		mark(l.Link)
	}
	return cs
}

// cdsl returns the current CDSL state, rereading the inventory when it changed on disk
// (checked at most every x.refresh): CDSLs made or removed while the server runs, and node
// trees added, take effect without a restart.
func (x *export) cdsl() *cdslState {
	cs := x.cs.Load()
	next := x.nextCheck.Load()
	now := time.Now().UnixNano()
	if now < next || !x.nextCheck.CompareAndSwap(next, now+int64(x.refresh)) {
		return cs
	}
	var key listingKey
	var st unix.Stat_t
	if err := statAt(x.rootFD, cdsl.DefaultInventory, &st); err == nil {
		key = listingKey{st.Ino, st.Mtim, st.Ctim, st.Size}
	}
	if key == cs.key {
		return cs
	}
	snap, key, err := x.loadCDSL()
	if err != nil {
		return cs // keep serving what was valid; the next check tries again
	}
	cs = x.newCDSLState(snap, key)
	x.cs.Store(cs)
	return cs
}

func (x *export) close() {
	if x.rootFD >= 0 {
		unix.Close(x.rootFD)
		x.rootFD = -1
	}
	x.mu.Lock()
	for _, v := range x.views {
		v.close()
	}
	x.mu.Unlock()
}

// allows reports whether the export admits a client at addr.
func (x *export) allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range x.cfg.Clients {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// within reports whether clean path p is dir or below it ("" is the root).
func within(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}

// parentOf is the view path of p's directory ("" for top-level names and the root).
func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// view is what one node sees of an export.
type view struct {
	x       *export
	node    string
	tree    atomic.Pointer[nodeTree]
	stateFD int // O_PATH directory StateDir/<node>, -1 without writable paths

	seedOnce sync.Once
	seedErr  error
	// seeding is set while seed copies the image's view into the state directory: writable
	// paths then resolve to the image. Nothing else uses the view until seeding is over.
	seeding bool
	index   sync.Once

	lmu      sync.Mutex
	listings map[string]stateListing // by rel in the state directory
}

// view returns node's view of the export, creating (and seeding) it on first use.
func (x *export) view(node string) (*view, error) {
	if err := cdsl.ValidNode(node); err != nil {
		return nil, fmt.Errorf("nfsroot: export %s: %w", x.path, err)
	}
	x.mu.RLock()
	v, ok := x.views[node]
	x.mu.RUnlock()
	if !ok {
		x.mu.Lock()
		if v, ok = x.views[node]; !ok {
			v = &view{x: x, node: node, stateFD: -1}
			x.views[node] = v
		}
		x.mu.Unlock()
	}
	cs := x.cdsl()
	if t := v.tree.Load(); t == nil || t.cs != cs || time.Now().UnixNano() > t.checked+int64(x.refresh) {
		v.tree.Store(v.findTree(cs))
	}
	v.seedOnce.Do(func() { v.seedErr = v.seed() })
	if v.seedErr != nil {
		return nil, v.seedErr
	}
	return v, nil
}

// nodeTree is the node's CDSL tree (relative to Root), as found for one cdslState.
type nodeTree struct {
	cs      *cdslState
	path    string // "" without CDSLs
	checked int64
}

// findTree picks the node's tree: its own when it has one, the default one otherwise.
func (v *view) findTree(cs *cdslState) *nodeTree {
	t := &nodeTree{cs: cs, checked: time.Now().UnixNano()}
	if cs.snap == nil {
		return t
	}
	l := cs.snap.Layout()
	t.path = joinRel(l.Tree, l.Default)
	if fd, err := openPath(v.x.rootFD, joinRel(l.Tree, v.node)); err == nil {
		var st unix.Stat_t
		if fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			t.path = joinRel(l.Tree, v.node)
		}
		unix.Close(fd)
	}
	return t
}

func (v *view) close() {
	if v.stateFD >= 0 {
		unix.Close(v.stateFD)
		v.stateFD = -1
	}
}

func (v *view) fd(l layer) int {
	if l == layerState {
		return v.stateFD
	}
	return v.x.rootFD
}

var errHidden = errors.New("not in this node's view")

// resolve maps a clean view path ("" for the root) to where it lives for this node.
func (v *view) resolve(p string) (loc, error) {
	if p == brokenPath {
		return loc{}, errHidden
	}
	x := v.x
	if len(x.writable) > 0 && !v.seeding {
		for end := len(p); end > 0; {
			if x.isWrit[p[:end]] {
				return loc{layerState, p}, nil
			}
			end = strings.LastIndexByte(p[:end], '/')
			if end < 0 {
				break
			}
		}
	}
	t := v.tree.Load()
	cs := t.cs
	if cs.snap == nil {
		return loc{layerBase, p}, nil
	}
	l := cs.snap.Layout()
	if within(p, l.Tree) && p != l.Tree {
		rest := p[len(l.Tree)+1:]
		name, _, _ := strings.Cut(rest, "/")
		if name != v.node && name != l.Default {
			return loc{}, errHidden
		}
	}
	return loc{layerBase, cs.snap.Resolve(t.path, p)}, nil
}

// child resolves name in directory dir (view path dirPath, resolved to dl).
func (v *view) child(dirPath string, dl loc, name string) (loc, error) {
	cs := v.tree.Load().cs
	if cs.special[dirPath][name] || cs.tree != "" && dirPath == cs.tree {
		return v.resolve(joinRel(dirPath, name))
	}
	return loc{dl.layer, joinRel(dl.rel, name)}, nil
}

// dirent is one entry of a directory listing of a view.
type dirent struct {
	name string
	// at is where the entry lives when it is not simply name inside the listed directory.
	at *loc
	// typ is the getdents type (0: unknown); dir is set when the entry is known to be a
	// directory.
	typ uint8
	dir bool
}

// list reads the directory at view path p (resolved to l) as this node sees it, sorted by
// name: the directory's own entries, with per-node trees of other nodes hidden and mapping
// points (writable roots, CDSLs) resolved; entries that do not exist for this node are left
// out.
func (v *view) list(p string, l loc) ([]dirent, error) {
	raw, err := v.readRaw(l)
	if err != nil {
		return nil, err
	}
	if syn := v.x.synth[p]; len(syn) > 0 {
		raw = slices.Clone(raw) // the cached slice is shared
		for _, s := range syn {
			if !slices.ContainsFunc(raw, func(r rawDirent) bool { return r.name == s }) {
				raw = append(raw, rawDirent{name: s})
			}
		}
		sort.Slice(raw, func(i, j int) bool { return raw[i].name < raw[j].name })
	}
	out := make([]dirent, 0, len(raw))
	cs := v.tree.Load().cs
	sp := cs.special[p]
	isTree := cs.tree != "" && p == cs.tree
	for _, r := range raw {
		if !sp[r.name] && !isTree {
			out = append(out, dirent{name: r.name, typ: r.typ, dir: r.typ == unix.DT_DIR})
			continue
		}
		cl, err := v.resolve(joinRel(p, r.name))
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if v.statLoc(cl, &st) != nil {
			continue
		}
		out = append(out, dirent{name: r.name, at: &cl, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR})
	}
	return out, nil
}

// readRaw reads a resolved directory's entries, sorted by name: from the cache for the
// image; for the node's state, again only when the directory changed since the last read
// (a client paging through a large directory would otherwise cost a full read per page).
func (v *view) readRaw(l loc) ([]rawDirent, error) {
	if l.layer == layerBase {
		if raw, ok := v.x.cache.list(l.rel); ok {
			return raw, nil
		}
	}
	fd, err := v.openDir(l)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var key listingKey
	if l.layer == layerState {
		var st unix.Stat_t
		if err := fstat(fd, &st); err != nil {
			return nil, err
		}
		key = listingKey{st.Ino, st.Mtim, st.Ctim, st.Size}
		v.lmu.Lock()
		c, ok := v.listings[l.rel]
		v.lmu.Unlock()
		if ok && c.key == key {
			return c.ents, nil
		}
	}
	raw, err := readDirents(fd)
	if err != nil {
		return nil, err
	}
	sort.Slice(raw, func(i, j int) bool { return raw[i].name < raw[j].name })
	switch l.layer {
	case layerBase:
		v.x.cache.putList(l.rel, raw)
	case layerState:
		// Directory times are coarse (a clock tick): a listing is kept only once the
		// directory has been quiet for a second, so that no change can hide behind an
		// unchanged time.
		if time.Since(time.Unix(key.ctim.Unix())) < time.Second || time.Since(time.Unix(key.mtim.Unix())) < time.Second {
			break
		}
		v.lmu.Lock()
		if v.listings == nil || len(v.listings) >= 256 {
			v.listings = map[string]stateListing{}
		}
		v.listings[l.rel] = stateListing{key: key, ents: raw}
		v.lmu.Unlock()
	}
	return raw, nil
}

// A listing of the node's state stays valid while the directory's inode, times and size do.
type listingKey struct {
	ino        uint64
	mtim, ctim unix.Timespec
	size       int64
}

type stateListing struct {
	key  listingKey
	ents []rawDirent
}

// openDir opens a resolved directory for reading.
func (v *view) openDir(l loc) (int, error) {
	fd := v.fd(l.layer)
	if fd < 0 {
		return -1, unix.ENOENT
	}
	return openIn(fd, l.rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

type rawDirent struct {
	name string
	typ  uint8
}

// readNames reads all names of an open directory, without "." and "..".
func readNames(fd int) ([]string, error) {
	raw, err := readDirents(fd)
	names := make([]string, len(raw))
	for i, r := range raw {
		names[i] = r.name
	}
	return names, err
}

// readDirents reads all entries of an open directory (getdents64), without "." and "..".
func readDirents(fd int) ([]rawDirent, error) {
	var names []rawDirent
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		b := buf[:n]
		for len(b) >= 19 {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := indexNul(name); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				names = append(names, rawDirent{name: s, typ: b[18]})
			}
			b = b[reclen:]
		}
	}
}

func indexNul(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// statLoc stats a resolved path without following links (from the cache for the image).
func (v *view) statLoc(l loc, st *unix.Stat_t) error {
	if l.layer == layerBase {
		if v.x.cache.stat(l.rel, st) {
			return nil
		}
		if err := v.statUncached(l, st); err != nil {
			return err
		}
		v.x.cache.putStat(l.rel, st)
		return nil
	}
	return v.statUncached(l, st)
}

func (v *view) statUncached(l loc, st *unix.Stat_t) error {
	fd := v.fd(l.layer)
	if fd < 0 {
		return unix.ENOENT
	}
	if !strings.Contains(l.rel, "/") && l.rel != "" {
		return statAt(fd, l.rel, st)
	}
	pfd, err := openPath(fd, l.rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return fstat(pfd, st)
}

// openLoc opens a resolved path as O_PATH.
func (v *view) openLoc(l loc) (int, error) {
	fd := v.fd(l.layer)
	if fd < 0 {
		return -1, unix.ENOENT
	}
	return openPath(fd, l.rel)
}
