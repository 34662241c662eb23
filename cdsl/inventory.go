package cdsl

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Open Sharedroot's defaults (comoonics ComCdslRepository).
const (
	DefaultTree       = "cluster/cdsl"
	DefaultSharedTree = "cluster/shared"
	DefaultLink       = "cdsl.local"
	DefaultNode       = "default"
	// DefaultInventory is where the inventory lives, relative to the root. Open Sharedroot
	// also used var/lib/cdsl/cdsl_inventory.xml; the root level keeps it out of /var, which
	// is often host-dependent itself.
	DefaultInventory = ".cdsl_inventory.xml"
)

// Layout names the parts of the infrastructure, relative to the root.
type Layout struct {
	// Tree holds one directory per node (and the default one): Tree/<node>/<path>.
	Tree string
	// SharedTree holds paths made shared again under a host-dependent parent.
	SharedTree string
	// Link is the mount point where a booted node sees its own tree (bind-mounted from
	// Tree/<node>); host-dependent paths are symbolic links through it.
	Link string
	// Default is the name of the tree copied to new nodes and used by nodes without a tree.
	Default string
}

// DefaultLayout is Open Sharedroot's layout.
var DefaultLayout = Layout{Tree: DefaultTree, SharedTree: DefaultSharedTree, Link: DefaultLink, Default: DefaultNode}

func (l Layout) validate() error {
	for _, f := range []struct{ name, v string }{
		{"cdsltree", l.Tree}, {"cdsltree_shared", l.SharedTree}, {"cdsl_link", l.Link},
	} {
		c, err := CleanPath(f.v)
		if err != nil || c != f.v {
			return fmt.Errorf("inventory: %s %q is not a clean relative path", f.name, f.v)
		}
	}
	if l.Default != DefaultNode {
		return fmt.Errorf("inventory: default_dir %q: only %q is supported", l.Default, DefaultNode)
	}
	if under(l.Tree, l.SharedTree) || under(l.SharedTree, l.Tree) || under(l.Link, l.Tree) ||
		under(l.Tree, l.Link) || under(l.Link, l.SharedTree) || under(l.SharedTree, l.Link) {
		return fmt.Errorf("inventory: cdsltree %q, cdsltree_shared %q and cdsl_link %q overlap", l.Tree, l.SharedTree, l.Link)
	}
	return nil
}

// reserved reports whether p is part of, or an ancestor of, the infrastructure (or the
// inventory file), so it can never become a CDSL.
func (l Layout) reserved(p string) bool {
	for _, r := range []string{l.Tree, l.SharedTree, l.Link, DefaultInventory} {
		if under(p, r) || under(r, p) {
			return true
		}
	}
	return false
}

// Type is the kind of a CDSL, spelled as in Open Sharedroot's inventory.
type Type string

const (
	// HostDependent: every node has its own copy under Tree/<node>; the path itself is a
	// symbolic link through Link.
	HostDependent Type = "hostdependent"
	// Shared: a path below a host-dependent one that all nodes share again; each node's
	// copy is a symbolic link into SharedTree.
	Shared Type = "shared"
)

// Entry is one CDSL of the inventory.
type Entry struct {
	// Path is relative to the root, clean (see CleanPath).
	Path string
	Type Type
	// Nodes are the node ids the CDSL was made for (the default tree is implied).
	Nodes []string
	// Time is when the CDSL was made.
	Time time.Time
}

// inventory is the parsed inventory file.
type inventory struct {
	Layout  Layout
	Entries []Entry // sorted by Path
}

// XML model, compatible with comoonics' cdsl inventory.
type xmlInventory struct {
	XMLName  xml.Name    `xml:"cdsls"`
	Version  string      `xml:"config_version,attr"`
	Defaults xmlDefaults `xml:"defaults"`
	CDSLs    []xmlCDSL   `xml:"cdsl"`
}

type xmlDefaults struct {
	Tree        string `xml:"cdsltree,attr"`
	SharedTree  string `xml:"cdsltree_shared,attr"`
	Link        string `xml:"cdsl_link,attr"`
	MaxNodeID   string `xml:"maxnodeidnum,attr"`
	UseNodeIDs  string `xml:"use_nodeids,attr"`
	DefaultDir  string `xml:"default_dir,attr"`
	ExpandStrng string `xml:"expandstring,attr,omitempty"`
}

type xmlCDSL struct {
	Src       string       `xml:"src,attr"`
	Type      string       `xml:"type,attr"`
	Timestamp string       `xml:"timestamp,attr"`
	Nodes     []xmlNodeRef `xml:"nodes>noderef"`
}

type xmlNodeRef struct {
	Ref string `xml:"ref,attr"`
}

// maxInventory bounds the inventory file we are willing to parse.
const maxInventory = 16 << 20

// parseInventory reads and validates an inventory file.
func parseInventory(data []byte) (*inventory, error) {
	if len(data) > maxInventory {
		return nil, fmt.Errorf("inventory: %d bytes, more than %d", len(data), maxInventory)
	}
	var x xmlInventory
	dec := xml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if x.Version != "1" {
		return nil, fmt.Errorf("inventory: config_version %q, want \"1\"", x.Version)
	}
	inv := &inventory{Layout: Layout{
		Tree: x.Defaults.Tree, SharedTree: x.Defaults.SharedTree, Link: x.Defaults.Link, Default: x.Defaults.DefaultDir,
	}}
	if inv.Layout.Default == "" {
		inv.Layout.Default = DefaultNode
	}
	if err := inv.Layout.validate(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range x.CDSLs {
		p, err := CleanPath(c.Src)
		if err != nil {
			return nil, fmt.Errorf("inventory: cdsl src: %w", err)
		}
		if p != c.Src {
			return nil, fmt.Errorf("inventory: cdsl src %q is not clean (want %q)", c.Src, p)
		}
		if inv.Layout.reserved(p) {
			return nil, fmt.Errorf("inventory: cdsl src %q: %w: inside the CDSL infrastructure", p, ErrInvalidPath)
		}
		if seen[p] {
			return nil, fmt.Errorf("inventory: cdsl src %q listed twice", p)
		}
		seen[p] = true
		t := Type(c.Type)
		if t != HostDependent && t != Shared {
			return nil, fmt.Errorf("inventory: cdsl %q: unknown type %q", p, c.Type)
		}
		e := Entry{Path: p, Type: t}
		if c.Timestamp != "" {
			ts, err := parseTimestamp(c.Timestamp)
			if err != nil {
				return nil, fmt.Errorf("inventory: cdsl %q: %w", p, err)
			}
			e.Time = ts
		}
		for _, n := range c.Nodes {
			if err := ValidNode(n.Ref); err != nil {
				return nil, fmt.Errorf("inventory: cdsl %q: %w", p, err)
			}
			e.Nodes = append(e.Nodes, n.Ref)
		}
		slices.Sort(e.Nodes)
		e.Nodes = slices.Compact(e.Nodes)
		inv.Entries = append(inv.Entries, e)
	}
	slices.SortFunc(inv.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	if err := inv.checkNesting(); err != nil {
		return nil, err
	}
	return inv, nil
}

// checkNesting verifies the rules the operations keep: a shared entry lies below a
// host-dependent one, and the nearest CDSL parent of an entry has the other type.
func (inv *inventory) checkNesting() error {
	for _, e := range inv.Entries {
		parent, ok := inv.parentOf(e.Path)
		switch {
		case e.Type == Shared && !ok:
			return fmt.Errorf("inventory: shared cdsl %q: %w: no host-dependent parent", e.Path, ErrNesting)
		case ok && parent.Type == e.Type:
			return fmt.Errorf("inventory: cdsl %q: %w: its parent %q has the same type", e.Path, ErrNesting, parent.Path)
		}
	}
	return nil
}

// marshal renders the inventory in comoonics' format.
func (inv *inventory) marshal() []byte {
	x := xmlInventory{Version: "1", Defaults: xmlDefaults{
		Tree: inv.Layout.Tree, SharedTree: inv.Layout.SharedTree, Link: inv.Layout.Link,
		MaxNodeID: "0", UseNodeIDs: "False", DefaultDir: inv.Layout.Default, ExpandStrng: ".cdsl",
	}}
	for _, e := range inv.Entries {
		c := xmlCDSL{Src: e.Path, Type: string(e.Type)}
		if !e.Time.IsZero() {
			c.Timestamp = strconv.FormatInt(e.Time.Unix(), 10)
			if ns := e.Time.Nanosecond(); ns != 0 {
				c.Timestamp += "." + strings.TrimRight(fmt.Sprintf("%09d", ns), "0")
			}
		}
		for _, n := range e.Nodes {
			c.Nodes = append(c.Nodes, xmlNodeRef{Ref: n})
		}
		x.CDSLs = append(x.CDSLs, c)
	}
	out, err := xml.MarshalIndent(x, "", "  ")
	if err != nil {
		// Only strings and slices of them: encoding cannot fail.
		panic(err)
	}
	return append(append([]byte(xml.Header), out...), '\n')
}

// find returns the entry for p.
func (inv *inventory) find(p string) (Entry, bool) {
	i, ok := slices.BinarySearchFunc(inv.Entries, p, func(e Entry, p string) int { return strings.Compare(e.Path, p) })
	if !ok {
		return Entry{}, false
	}
	return inv.Entries[i], true
}

// parentOf returns the nearest entry that is a proper ancestor of p.
func (inv *inventory) parentOf(p string) (Entry, bool) {
	for _, a := range parents(p) {
		if e, ok := inv.find(a); ok {
			return e, true
		}
	}
	return Entry{}, false
}

// governing returns the entry deciding where p lives: p itself or its nearest CDSL ancestor.
func (inv *inventory) governing(p string) (Entry, bool) {
	if e, ok := inv.find(p); ok {
		return e, true
	}
	return inv.parentOf(p)
}

// children returns the entries strictly below p.
func (inv *inventory) children(p string) []Entry {
	var out []Entry
	for _, e := range inv.Entries {
		if e.Path != p && under(e.Path, p) {
			out = append(out, e)
		}
	}
	return out
}

func (inv *inventory) add(e Entry) {
	inv.Entries = append(inv.Entries, e)
	slices.SortFunc(inv.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
}

func (inv *inventory) remove(p string) {
	inv.Entries = slices.DeleteFunc(inv.Entries, func(e Entry) bool { return e.Path == p })
}

func (inv *inventory) clone() *inventory {
	c := &inventory{Layout: inv.Layout, Entries: make([]Entry, len(inv.Entries))}
	for i, e := range inv.Entries {
		e.Nodes = slices.Clone(e.Nodes)
		c.Entries[i] = e
	}
	return c
}

// parseTimestamp reads comoonics' timestamps: seconds since the epoch with an optional
// fraction ("1700000000.123"), as Python's time.time() printed them.
func parseTimestamp(s string) (time.Time, error) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec < 0 || sec > 1<<40 || len(frac) > 9 {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	var nsec int64
	if frac != "" {
		n, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad timestamp %q", s)
		}
		nsec = int64(n)
		for range 9 - len(frac) {
			nsec *= 10
		}
	}
	return time.Unix(sec, nsec).UTC(), nil
}
