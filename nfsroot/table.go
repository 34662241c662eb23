package nfsroot

import (
	"strings"
	"sync"
)

// A handle's object id is a 64-bit FNV-1a hash of the object's path in the export's view,
// chained per component: id(dir/name) = fnv(id(dir), "/", name). The same path always gets
// the same id, so handles survive a restart by construction; the table maps ids back to
// paths and is rebuilt on demand after a restart (see export.index).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func rootID(exportPath string) uint64 {
	return fnvAdd(fnvAdd(fnvOffset, "provkit/nfsroot\x00"), exportPath)
}

func childID(parent uint64, name string) uint64 { return fnvAdd(fnvAdd(parent, "/"), name) }

// altID is the next id to try when id is taken by another path (a hash collision, or the
// old id of an object renamed away).
func altID(id uint64) uint64 { return fnvAdd(id, "\x00") }

// table maps object ids to paths for one export. Entries form a tree (parent index plus
// name), so a path costs its last component only; names live in chunked arenas and the id
// index is an open-addressing hash table of 32-bit entry numbers. At a million entries this
// is about 16 bytes per entry, the name, and 4-8 bytes of index.
type table struct {
	mu      sync.RWMutex
	entries [][]entry // chunks of entryChunk
	n       uint32    // entries in use
	names   [][]byte  // chunks of nameChunk bytes
	slots   []uint32  // entry number + 1, 0 = empty; len is a power of two
	used    int       // non-empty slots
}

type entry struct {
	id     uint64
	parent uint32
	name   uint32 // chunk<<nameShift | offset of a length byte followed by the name
}

const (
	entryShift = 16
	entryChunk = 1 << entryShift
	nameShift  = 20
	nameChunk  = 1 << nameShift
)

// newTable makes a table whose entry 0 is the export's root.
func newTable(root uint64) *table {
	t := &table{slots: make([]uint32, 1024)}
	t.add(root, 0, "")
	return t
}

func (t *table) entry(i uint32) *entry { return &t.entries[i>>entryShift][i&(entryChunk-1)] }

func (t *table) nameOf(e *entry) string {
	c := t.names[e.name>>nameShift]
	off := e.name & (nameChunk - 1)
	n := uint32(c[off])
	return string(c[off+1 : off+1+n])
}

// nameIs compares without allocating.
func (t *table) nameIs(e *entry, name string) bool {
	c := t.names[e.name>>nameShift]
	off := e.name & (nameChunk - 1)
	n := uint32(c[off])
	return int(n) == len(name) && string(c[off+1:off+1+n]) == name
}

func (t *table) storeName(name string) uint32 {
	if len(t.names) == 0 || len(t.names[len(t.names)-1])+1+len(name) > nameChunk {
		t.names = append(t.names, make([]byte, 0, nameChunk))
	}
	ci := len(t.names) - 1
	c := t.names[ci]
	off := len(c)
	c = append(c, byte(len(name)))
	t.names[ci] = append(c, name...)
	return uint32(ci)<<nameShift | uint32(off)
}

// find returns the entry number holding id.
func (t *table) find(id uint64) (uint32, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := mix(id) & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if t.entry(s-1).id == id {
			return s - 1, true
		}
	}
}

// mix spreads FNV's low bits, which are weak for short inputs, over the whole word.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

func (t *table) add(id uint64, parent uint32, name string) uint32 {
	if len(t.entries) == 0 || len(t.entries[len(t.entries)-1]) == entryChunk {
		t.entries = append(t.entries, make([]entry, 0, entryChunk))
	}
	ci := len(t.entries) - 1
	t.entries[ci] = append(t.entries[ci], entry{id: id, parent: parent, name: t.storeName(name)})
	n := t.n
	t.n++
	t.insertSlot(id, n)
	return n
}

func (t *table) insertSlot(id uint64, n uint32) {
	if (t.used+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	i := mix(id) & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = n + 1
	t.used++
}

func (t *table) grow() {
	old := t.slots
	t.slots = make([]uint32, len(old)*2)
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := mix(t.entry(s-1).id) & mask
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// deleteSlot removes id from the index (backward-shift deletion keeps probing correct). The
// entry itself stays, so paths through it still resolve for entries below it.
func (t *table) deleteSlot(id uint64) {
	mask := uint64(len(t.slots) - 1)
	i := mix(id) & mask
	for {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if t.entry(s-1).id == id {
			break
		}
		i = (i + 1) & mask
	}
	t.slots[i] = 0
	t.used--
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		s := t.slots[j]
		home := mix(t.entry(s-1).id) & mask
		// Move s back to the hole at i if its home is not in the cyclic range (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = s
			t.slots[j] = 0
			i = j
		}
	}
}

// child returns the entry number and id of dir/name, adding it when missing.
func (t *table) child(dir uint32, name string) (uint32, uint64) {
	t.mu.RLock()
	n, id, ok := t.lookupChild(dir, name)
	t.mu.RUnlock()
	if ok {
		return n, id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n, id, ok = t.lookupChild(dir, name)
	if ok {
		return n, id
	}
	return t.add(id, dir, name), id
}

// lookupChild finds dir/name; when missing, id is the id it would get.
func (t *table) lookupChild(dir uint32, name string) (uint32, uint64, bool) {
	id := childID(t.entry(dir).id, name)
	for {
		n, ok := t.find(id)
		if !ok {
			return 0, id, false
		}
		e := t.entry(n)
		if e.parent == dir && t.nameIs(e, name) && n != 0 {
			return n, id, true
		}
		id = altID(id)
	}
}

// get returns the entry number for id.
func (t *table) get(id uint64) (uint32, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.find(id)
}

// idOf returns the id of entry n.
func (t *table) idOf(n uint32) uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.entry(n).id
}

// parentOf returns the entry number of n's directory (the root's parent is the root).
func (t *table) parentOf(n uint32) uint32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.entry(n).parent
}

// brokenPath is what path returns for an entry whose chain of parents is broken: it
// resolves to nothing.
const brokenPath = "\x00"

// path returns the view path of entry n: "" for the root, "a/b/c" otherwise.
func (t *table) path(n uint32) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var parts [64]string
	p := parts[:0]
	for d := 0; n != 0; d++ {
		if d > 4096 {
			return brokenPath // a cycle cannot happen; refuse to loop if it did
		}
		e := t.entry(n)
		p = append(p, t.nameOf(e))
		n = e.parent
	}
	switch len(p) {
	case 0:
		return ""
	case 1:
		return p[0]
	}
	var b strings.Builder
	size := len(p) - 1
	for _, s := range p {
		size += len(s)
	}
	b.Grow(size)
	for i := len(p) - 1; i >= 0; i-- {
		b.WriteString(p[i])
		if i > 0 {
			b.WriteByte('/')
		}
	}
	return b.String()
}

// rename moves entry n to dir/name, keeping its id, so handles clients hold for it follow
// the object (what a client's silly rename of an open file relies on).
func (t *table) rename(n, dir uint32, name string) {
	if n == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(n)
	e.parent = dir
	e.name = t.storeName(name)
}

// forget drops id from the index: its handle turns stale.
func (t *table) forget(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.find(id); ok && n != 0 {
		t.deleteSlot(id)
	}
}

// size is the number of live ids.
func (t *table) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.used
}
