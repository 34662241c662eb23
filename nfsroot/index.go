package nfsroot

import (
	"golang.org/x/sys/unix"
)

// lookupPath finds the entry of a clean view path without adding anything.
func (t *table) lookupPath(p string) (uint32, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := uint32(0)
	for _, c := range splitPath(p) {
		var ok bool
		if n, _, ok = t.lookupChild(n, c); !ok {
			return 0, false
		}
	}
	return n, true
}

// lookupID returns the table entry of a handle's object id. An id the table does not know
// is either forged, stale, or from before a restart: in the last case the path it names is
// still there, so the view is indexed (once for the image, once per node for its own
// paths) and the id looked up again. Ids are a function of paths, so the walk finds exactly
// the ids handed out before.
func (v *view) lookupID(id uint64) (uint32, bool) {
	t := v.x.table
	if n, ok := t.get(id); ok {
		return n, true
	}
	v.x.baseIndex.Do(func() { v.walk("", loc{layerBase, ""}, 0, true) })
	if n, ok := t.get(id); ok {
		return n, true
	}
	v.index.Do(v.indexNode)
	return t.get(id)
}

// indexNode adds the node-specific parts of the view: everything below a mapping point
// (writable roots, CDSLs, the CDSL mount point, the node's own tree).
func (v *view) indexNode() {
	x := v.x
	var points []string
	points = append(points, x.writable...)
	if snap := v.tree.Load().cs.snap; snap != nil {
		l := snap.Layout()
		for _, e := range snap.Entries() {
			points = append(points, e.Path)
		}
		points = append(points, l.Link, joinRel(l.Tree, v.node), joinRel(l.Tree, l.Default))
	}
	for _, p := range points {
		var st unix.Stat_t
		n, _, l, err := v.walkPath(p, &st)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		v.walk(p, l, n, false)
	}
}

// walk adds every path below the directory p (resolved to l, table entry n). With
// skipSpecial, it adds mapping points but does not descend into them.
func (v *view) walk(p string, l loc, n uint32, skipSpecial bool) {
	ents, err := v.list(p, l)
	if err != nil {
		return
	}
	t := v.x.table
	cs := v.tree.Load().cs
	isTree := cs.tree != "" && p == cs.tree
	for _, e := range ents {
		cn, _ := t.child(n, e.name)
		if skipSpecial && (e.at != nil || isTree) {
			continue
		}
		cl := loc{l.layer, joinRel(l.rel, e.name)}
		if e.at != nil {
			cl = *e.at
		}
		if !e.dir {
			if e.at == nil && e.typ != 0 {
				continue
			}
			var st unix.Stat_t
			if v.statLoc(cl, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
		}
		v.walk(joinRel(p, e.name), cl, cn, skipSpecial)
	}
}
