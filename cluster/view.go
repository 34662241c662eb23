package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// A View is a consistent, read-only picture of the store, indexed for attribute
// resolution: nodes and their groups, group rows of the node-keyed tables, site settings.
// It resolves attributes exactly as xCAT does: the node's own value wins, else the first of
// its groups (in nodelist.groups order) with a value; empty means unset; disabled rows
// count for nothing; regex-valued attributes are evaluated for the node.
//
// A View is safe for concurrent use. Load a new one to see later changes (Generation
// tells whether anything changed).
type View struct {
	// Generation is the store generation the view was read at (0 when unknown).
	Generation int64

	site       map[string]string
	nodes      map[string]*nodeRec
	names      []string // sorted (ASCII)
	members    map[string][]string
	nodegroups map[string]Row
	// keyed holds the enabled rows of node-keyed tables by node (or group) name (in the
	// table's NodeColumn); for tables with several rows per node (switch, mpa) the first
	// row wins.
	keyed map[string]map[string]Row
	// rows holds the enabled rows of the other tables, in insertion order.
	rows map[string][]Row
	// hier maps a column named in site.hierarchicalattrs to its delimiter.
	hier map[string]string
	// partial views hold only some nodes (LoadViewOf).
	partial bool

	rx regexMemo

	indexOnce sync.Once
	byMAC     map[string]string
	byIP      map[string]string
}

type nodeRec struct {
	row    Row
	groups []string
}

// splitList splits a comma-separated list, trimming blanks and dropping empty items.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// LoadView reads every table in one transaction and indexes it.
func LoadView(ctx context.Context, s Store) (*View, error) {
	v := newView()
	err := s.View(ctx, func(tx Tx) error {
		used, err := viewTables(tx)
		if err != nil {
			return err
		}
		for i := range schema {
			if !used[schema[i].Name] {
				continue
			}
			rows, err := tx.Rows(schema[i].Name, nil)
			if err != nil {
				return err
			}
			v.add(&schema[i], rows)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.finish(ctx, s)
	return v, nil
}

// nonEmptyReader is the optional capability of a Tx to tell, in one statement, which
// tables hold rows (the SQL store has it).
type nonEmptyReader interface {
	NonEmpty(tables []string) (map[string]bool, error)
}

// viewTables returns the tables a view loads: every table but the Bulk ones, less those
// the store says are empty. Most of xCAT's 73 tables are empty in a given cluster, and one
// statement that says so is much cheaper than a query per table.
func viewTables(tx Tx) (map[string]bool, error) {
	var names []string
	for i := range schema {
		if !schema[i].Bulk {
			names = append(names, schema[i].Name)
		}
	}
	if ne, ok := tx.(nonEmptyReader); ok {
		return ne.NonEmpty(names)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// rowsInReader is the optional capability of a Tx to read rows whose column is one of a
// set of values (the SQL store has it).
type rowsInReader interface {
	RowsIn(table, col string, vals []string) ([]Row, error)
}

// LoadViewOf reads only what resolving the named nodes (or groups) needs: their nodelist
// rows, the rows of their groups, and the small global tables. Names that are not nodes
// are simply absent from the view. Such a partial view cannot expand noderanges beyond the
// names it holds; commands use it for fast single-node answers.
func LoadViewOf(ctx context.Context, s Store, names []string) (*View, error) {
	v := newView()
	v.partial = true
	err := s.View(ctx, func(tx Tx) error {
		in, ok := tx.(rowsInReader)
		if !ok {
			return fmt.Errorf("cluster: store %T cannot read selected rows", tx)
		}
		used, err := viewTables(tx)
		if err != nil {
			return err
		}
		nl, err := in.RowsIn("nodelist", "node", names)
		if err != nil {
			return err
		}
		nlTab, _ := LookupTable("nodelist")
		v.add(nlTab, nl)
		// xcatdefaults holds the postscripts lsdef prepends to every node's.
		keys := append(slices.Clone(names), "xcatdefaults")
		for _, r := range nl {
			keys = append(keys, splitList(r["groups"])...)
		}
		slices.Sort(keys)
		keys = slices.Compact(keys)
		for i := range schema {
			t := &schema[i]
			var rows []Row
			switch {
			case t.Name == "nodelist" || !used[t.Name]:
				continue
			case t.NodeKeyed():
				rows, err = in.RowsIn(t.Name, t.NodeColumn(), keys)
			case t.Name == "nodegroup":
				rows, err = in.RowsIn(t.Name, "groupname", keys)
			default:
				rows, err = tx.Rows(t.Name, nil)
			}
			if err != nil {
				return err
			}
			v.add(t, rows)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.finish(ctx, s)
	return v, nil
}

func newView() *View {
	return &View{
		site:       map[string]string{},
		nodes:      map[string]*nodeRec{},
		members:    map[string][]string{},
		nodegroups: map[string]Row{},
		keyed:      map[string]map[string]Row{},
		rows:       map[string][]Row{},
		hier:       map[string]string{},
	}
}

func (v *View) add(t *Table, rows []Row) {
	for _, r := range rows {
		if IsDisabled(r["disable"]) {
			continue
		}
		switch {
		case t.Name == "site":
			v.site[r["key"]] = r["value"]
		case t.Name == "nodelist":
			v.nodes[r["node"]] = &nodeRec{row: r, groups: splitList(r["groups"])}
		case t.Name == "nodegroup":
			v.nodegroups[r["groupname"]] = r
		case t.NodeKeyed():
			m := v.keyed[t.Name]
			if m == nil {
				m = map[string]Row{}
				v.keyed[t.Name] = m
			}
			if n := r[t.NodeColumn()]; m[n] == nil {
				m[n] = r
			}
		default:
			v.rows[t.Name] = append(v.rows[t.Name], r)
		}
	}
}

func (v *View) finish(ctx context.Context, s Store) {
	v.names = make([]string, 0, len(v.nodes))
	for n := range v.nodes {
		v.names = append(v.names, n)
	}
	slices.Sort(v.names)
	for _, n := range v.names {
		for _, g := range v.nodes[n].groups {
			v.members[g] = append(v.members[g], n)
		}
	}
	// site.hierarchicalattrs: "postscripts,postbootscripts" or "attr:delimiter" items.
	for _, item := range splitList(v.site["hierarchicalattrs"]) {
		name, delim, ok := strings.Cut(item, ":")
		if !ok || delim == "" {
			delim = ","
		}
		v.hier[name] = delim
	}
	if g, ok := s.(interface {
		Generation(context.Context) (int64, error)
	}); ok {
		v.Generation, _ = g.Generation(ctx)
	}
}

// Site returns the value of site key (enabled rows only).
func (v *View) Site(key string) string { return v.site[key] }

// IsNode reports whether name is a node (an enabled nodelist row).
func (v *View) IsNode(name string) bool { return v.nodes[name] != nil }

// Nodes returns every node name in ASCII order. The slice must not be modified.
func (v *View) Nodes() []string { return v.names }

// Partial reports whether the view holds only some of the nodes (LoadViewOf).
func (v *View) Partial() bool { return v.partial }

// NodeGroups returns the groups of node in nodelist.groups order.
func (v *View) NodeGroups(node string) []string {
	if r := v.nodes[node]; r != nil {
		return r.groups
	}
	return nil
}

// IsGroup reports whether name is a group: a nodegroup row, or a name in some node's groups.
func (v *View) IsGroup(name string) bool {
	return v.nodegroups[name] != nil || len(v.members[name]) > 0
}

// Groups returns every group name in ASCII order.
func (v *View) Groups() []string {
	set := map[string]bool{}
	for g := range v.nodegroups {
		set[g] = true
	}
	for g := range v.members {
		set[g] = true
	}
	out := make([]string, 0, len(set))
	for g := range set {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// GroupMembers returns the nodes of group name in ASCII order and whether the group
// exists. Dynamic groups (nodegroup.grouptype=dynamic) are resolved from wherevals.
func (v *View) GroupMembers(name string) ([]string, bool, error) {
	ng := v.nodegroups[name]
	if ng != nil && ng["grouptype"] == "dynamic" {
		ws, err := ParseWherevals(ng["wherevals"])
		if err != nil {
			return nil, true, fmt.Errorf("dynamic group %s: %w", name, err)
		}
		ms := make([]*WhereMatcher, len(ws))
		for i, w := range ws {
			if ms[i], err = w.Compile(); err != nil {
				return nil, true, fmt.Errorf("dynamic group %s: %w", name, err)
			}
		}
		var out []string
		for _, n := range v.names {
			ok := true
			for _, m := range ms {
				if !m.MatchDefined(v.Lookup(n, m.Where().Attr)) {
					ok = false
					break
				}
			}
			if ok {
				out = append(out, n)
			}
		}
		return out, true, nil
	}
	m := v.members[name]
	return m, ng != nil || len(m) > 0, nil
}

// Match returns the nodes whose resolved attr ("table.col" or a node attribute name)
// satisfies op against val, for noderange selectors such as nodehm.mgt==ipmi.
func (v *View) Match(attr, op, val string) ([]string, error) {
	m, err := Where{Attr: attr, Op: op, Value: val}.Compile()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range v.names {
		if m.Match(v.Lookup(n, attr)) {
			out = append(out, n)
		}
	}
	return out, nil
}

var _ NodeSource = (*View)(nil)

// Lookup resolves attr for node, where attr is either "table.column" or a node attribute.
func (v *View) Lookup(node, attr string) string {
	if tab, col, ok := strings.Cut(attr, "."); ok {
		return v.Column(node, tab, col)
	}
	return v.NodeAttr(node, attr)
}

// Column resolves table.col for node with group inheritance and regex evaluation.
// nodelist columns are the node's own (never inherited); tables not keyed by node give "".
func (v *View) Column(node, table, col string) string {
	if table == "nodelist" {
		if r := v.nodes[node]; r != nil {
			return r.row[col]
		}
		return ""
	}
	raw := v.rawColumn(node, table, col)
	if raw == "" {
		return ""
	}
	return v.rx.expand(table, raw, node)
}

// rawColumn is Column before regex evaluation.
func (v *View) rawColumn(node, table, col string) string {
	m := v.keyed[table]
	if m == nil {
		return ""
	}
	if delim, ok := v.hierDelim(table, col); ok {
		return v.concat(node, m, col, delim)
	}
	if r := m[node]; r != nil && r[col] != "" {
		return r[col]
	}
	for _, g := range v.NodeGroups(node) {
		if r := m[g]; r != nil && r[col] != "" {
			return r[col]
		}
	}
	return ""
}

func (v *View) hierDelim(table, col string) (string, bool) {
	if len(v.hier) == 0 {
		return "", false
	}
	if d, ok := v.hier[col]; ok {
		return d, true
	}
	d, ok := v.hier[table+"."+col]
	return d, ok
}

// concat joins the node's value and each group's value (site.hierarchicalattrs),
// dropping duplicates.
func (v *View) concat(node string, m map[string]Row, col, delim string) string {
	var items []string
	seen := map[string]bool{}
	addAll := func(val string) {
		for _, it := range strings.Split(val, delim) {
			if it != "" && !seen[it] {
				seen[it] = true
				items = append(items, it)
			}
		}
	}
	if r := m[node]; r != nil {
		addAll(r[col])
	}
	for _, g := range v.NodeGroups(node) {
		if r := m[g]; r != nil {
			addAll(r[col])
		}
	}
	return strings.Join(items, delim)
}

// GroupColumn returns the raw value of table.col on the group row of group (no inheritance,
// no regex evaluation), as lsdef shows group objects.
func (v *View) GroupColumn(group, table, col string) string {
	if r := v.keyed[table][group]; r != nil {
		return r[col]
	}
	return ""
}

// TableRows returns the enabled rows of a table that is not keyed by node (networks,
// osimage, passwd, ...), in insertion order. The rows must not be modified.
func (v *View) TableRows(table string) []Row { return v.rows[table] }

// regexMemo caches the expansion of regex-valued attributes: a 10,000-node lsdef evaluates
// the same group value for every node, so the compiled form is kept per value.
type regexMemo struct {
	cache RegexCache
}

func (m *regexMemo) expand(table, raw, node string) string {
	if table == "nics" {
		if !strings.Contains(raw, "|") && !strings.Contains(raw, "/") {
			return raw
		}
		out, err := m.cache.ExpandNics(raw, node)
		if err != nil {
			return ""
		}
		return out
	}
	if !IsRegexAttr(raw) {
		return raw
	}
	out, err := m.cache.Expand(raw, node)
	if err != nil {
		return ""
	}
	return out
}

// NodeAttr resolves node attribute attr for node (group inheritance, regex evaluation and
// only_if conditions applied). Unknown attributes and unset values give "".
func (v *View) NodeAttr(node, attr string) string {
	ot := &objectTypes[0]
	for _, a := range ot.Attrs {
		if a.Name != attr {
			continue
		}
		if !v.condHolds(node, a.OnlyIf) {
			continue
		}
		if val := v.Column(node, a.Table, a.Column); val != "" {
			return val
		}
	}
	return ""
}

// plainAttr resolves attr for node through its unconditional definitions only. Conditions
// are checked against these (mgt, nodetype, ...): a condition on an attribute that also
// has conditional definitions (nodetype has pdu.nodetype when nodetype=pdu) must not
// depend on itself.
func (v *View) plainAttr(node, attr string) string {
	for _, a := range objectTypes[0].Attrs {
		if a.Name != attr || a.OnlyIf != "" {
			continue
		}
		if val := v.Column(node, a.Table, a.Column); val != "" {
			return val
		}
	}
	return ""
}

// condHolds checks an only_if condition "attr=value" for node.
func (v *View) condHolds(node, cond string) bool {
	if cond == "" {
		return true
	}
	attr, want, _ := strings.Cut(cond, "=")
	got := v.plainAttr(node, attr)
	if attr == "nodetype" {
		// nodetype is a list such as "ppc,osi".
		for _, t := range splitList(got) {
			if strings.EqualFold(t, want) {
				return true
			}
		}
		return false
	}
	return strings.EqualFold(got, want)
}

// NodeAttrs returns every set attribute of node, resolved.
func (v *View) NodeAttrs(node string) map[string]string {
	out := map[string]string{}
	if !v.IsNode(node) {
		return out
	}
	for _, a := range objectTypes[0].Attrs {
		if _, done := out[a.Name]; done {
			continue
		}
		if !v.condHolds(node, a.OnlyIf) {
			continue
		}
		if val := v.Column(node, a.Table, a.Column); val != "" {
			out[a.Name] = val
		}
	}
	return out
}
