package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// An Object is one object definition as lsdef shows it: the attributes that are set,
// resolved for nodes (inheritance, regex) and raw for groups.
type Object struct {
	Type  string
	Name  string
	Attrs map[string]string
}

// SortedAttrs returns the attribute names in ASCII order, as lsdef prints them.
func (o *Object) SortedAttrs() []string {
	names := make([]string, 0, len(o.Attrs))
	for k := range o.Attrs {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// SiteObjectName is the name of the one site object.
const SiteObjectName = "clustersite"

// ObjectNames returns the names of every object of type typ, in ASCII order.
func (v *View) ObjectNames(typ string) ([]string, error) {
	ot, err := LookupObjectType(typ)
	if err != nil {
		return nil, err
	}
	switch ot.Name {
	case "node":
		return slices.Clone(v.names), nil
	case "group":
		return v.Groups(), nil
	case "site":
		return []string{SiteObjectName}, nil
	}
	var out []string
	for _, r := range v.rows[ot.Table] {
		if n := r[ot.NameColumn]; n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ObjectOptions shape what Object returns.
type ObjectOptions struct {
	// Stanza leaves out what lsdef adds for display only (the xcatdefaults postscripts
	// prepended to a node's), as lsdef -z does.
	Stanza bool
}

// Object returns the definition of object name of type typ, or an error wrapping
// ErrNotFound with xCAT's message.
func (v *View) Object(typ, name string, opt ObjectOptions) (*Object, error) {
	ot, err := LookupObjectType(typ)
	if err != nil {
		return nil, err
	}
	o := &Object{Type: ot.Name, Name: name, Attrs: map[string]string{}}
	notFound := fmt.Errorf("Could not find an object named '%s' of type '%s'.: %w", name, ot.Name, ErrNotFound)
	switch ot.Name {
	case "node":
		if !v.IsNode(name) {
			return nil, notFound
		}
		for k, val := range v.NodeAttrs(name) {
			o.Attrs[k] = val
		}
		delete(o.Attrs, "node")
		if !opt.Stanza {
			v.prependDefaults(o)
		}
		splitNics(o)
	case "group":
		if !v.IsGroup(name) {
			return nil, notFound
		}
		if ng := v.nodegroups[name]; ng != nil {
			for _, a := range ot.Attrs {
				if a.Table == "nodegroup" && ng[a.Column] != "" {
					o.Attrs[a.Name] = ng[a.Column]
				}
			}
		} else {
			o.Attrs["grouptype"] = "static"
		}
		delete(o.Attrs, "groupname")
		members, _, err := v.GroupMembers(name)
		if err != nil {
			return nil, err
		}
		if len(members) > 0 {
			o.Attrs["members"] = strings.Join(members, ",")
		} else {
			delete(o.Attrs, "members")
		}
		for _, a := range ot.Attrs {
			if a.Table == "nodegroup" || o.Attrs[a.Name] != "" {
				continue
			}
			if val := v.GroupColumn(name, a.Table, a.Column); val != "" && v.groupCondHolds(name, a.OnlyIf) {
				o.Attrs[a.Name] = val
			}
		}
		splitNics(o)
	case "site":
		if name != SiteObjectName {
			return nil, notFound
		}
		for k, val := range v.site {
			if val != "" {
				o.Attrs[k] = val
			}
		}
	default:
		rows := v.objectRows(ot, name)
		if rows == nil {
			return nil, notFound
		}
		for _, a := range ot.Attrs {
			if a.Column == ot.NameColumn && a.Table == ot.Table {
				continue
			}
			if a.OnlyIf != "" {
				k, want, _ := strings.Cut(a.OnlyIf, "=")
				if !strings.EqualFold(rows[ot.Table][k], want) {
					continue
				}
			}
			if r := rows[a.Table]; r != nil && r[a.Column] != "" {
				o.Attrs[a.Name] = r[a.Column]
			}
		}
	}
	return o, nil
}

// objectRows finds the rows of a network, osimage or policy object by table.
func (v *View) objectRows(ot *ObjectType, name string) map[string]Row {
	var out map[string]Row
	for _, a := range ot.Attrs {
		if out != nil && out[a.Table] != nil {
			continue
		}
		for _, r := range v.rows[a.Table] {
			if r[a.Key] == name {
				if out == nil {
					out = map[string]Row{}
				}
				out[a.Table] = r
				break
			}
		}
	}
	if out == nil || out[ot.Table] == nil {
		return nil
	}
	return out
}

// groupCondHolds checks an only_if condition against a group's own rows.
func (v *View) groupCondHolds(group, cond string) bool {
	if cond == "" {
		return true
	}
	attr, want, _ := strings.Cut(cond, "=")
	for _, a := range objectTypes[0].Attr(attr) {
		if a.OnlyIf != "" {
			continue
		}
		got := v.GroupColumn(group, a.Table, a.Column)
		if strings.EqualFold(got, want) || attr == "nodetype" && slices.ContainsFunc(splitList(got), func(s string) bool { return strings.EqualFold(s, want) }) {
			return true
		}
	}
	return false
}

// prependDefaults puts the xcatdefaults postscripts in front of a node's own, as lsdef's
// long format shows them (shared/xcat/schema.md §0).
func (v *View) prependDefaults(o *Object) {
	def := v.keyed["postscripts"]["xcatdefaults"]
	if def == nil {
		return
	}
	for _, col := range []string{"postscripts", "postbootscripts"} {
		base := def[col]
		if base == "" {
			continue
		}
		if own := o.Attrs[col]; own != "" {
			o.Attrs[col] = base + "," + own
		} else {
			o.Attrs[col] = base
		}
	}
}

// nicsColumns are the nics table's per-interface attributes.
var nicsColumns = []string{"nicips", "nichostnamesuffixes", "nichostnameprefixes", "nictypes", "niccustomscripts", "nicnetworks", "nicaliases", "nicextraparams", "nicdevices", "nicsadapter"}

// splitNics shows nics attributes per interface: nicips=eth0!1.1.1.1,eth1!2.2.2.2 becomes
// nicips.eth0=1.1.1.1 and nicips.eth1=2.2.2.2.
func splitNics(o *Object) {
	for _, col := range nicsColumns {
		val, ok := o.Attrs[col]
		if !ok {
			continue
		}
		delete(o.Attrs, col)
		for nic, v := range parseNicValue(val) {
			o.Attrs[col+"."+nic] = v
		}
	}
}

// parseNicValue splits "eth0!a|b,eth1!c" (or the older "eth0:a") into nic -> value.
func parseNicValue(val string) map[string]string {
	out := map[string]string{}
	for _, item := range splitList(val) {
		nic, v, ok := strings.Cut(item, "!")
		if !ok {
			nic, v, ok = strings.Cut(item, ":")
		}
		if ok && nic != "" {
			out[nic] = v
		}
	}
	return out
}

// joinNicValue is the inverse of parseNicValue, keeping the order of order and then new nics.
func joinNicValue(old string, set map[string]string) string {
	var items []string
	seen := map[string]bool{}
	for _, item := range splitList(old) {
		nic, _, ok := strings.Cut(item, "!")
		if !ok {
			nic, _, _ = strings.Cut(item, ":")
		}
		if nv, ok := set[nic]; ok {
			seen[nic] = true
			if nv != "" {
				items = append(items, nic+"!"+nv)
			}
			continue
		}
		items = append(items, item)
	}
	nics := make([]string, 0, len(set))
	for nic := range set {
		if !seen[nic] {
			nics = append(nics, nic)
		}
	}
	slices.Sort(nics)
	for _, nic := range nics {
		if set[nic] != "" {
			items = append(items, nic+"!"+set[nic])
		}
	}
	return strings.Join(items, ",")
}

// DefineMode says how Define treats existing objects and list values.
type DefineMode int

const (
	// ModeChange is chdef: create the object if missing, else set the given attributes.
	ModeChange DefineMode = iota
	// ModeCreate is mkdef: the object must not exist.
	ModeCreate
	// ModeReplace is mkdef -f: an existing object is removed and defined anew.
	ModeReplace
	// ModeAppend is chdef -p: add items to comma lists, without duplicates.
	ModeAppend
	// ModeRemove is chdef -m: remove items from comma lists.
	ModeRemove
)

// An Assign is one attr=value of mkdef/chdef, in command-line order.
type Assign struct{ Attr, Value string }

// A Definition is one mkdef or chdef request.
type Definition struct {
	Type  string   // node, group, network, osimage, site, policy
	Names []string // object names, already expanded
	Attrs []Assign
	Mode  DefineMode
	// NewName renames the (single) object, as chdef -n does.
	NewName string
	// Dynamic and Where define a dynamic group (mkdef -t group -d -w attr==val ...).
	Dynamic bool
	Where   []string
}

// DefineResult reports what Define did.
type DefineResult struct {
	Created  []string
	Modified []string
	Warnings []string
}

// ErrExists is returned (wrapped, naming the object) by mkdef without -f for an object
// that already exists.
var ErrExists = errors.New("already exists")

// Define applies a mkdef/chdef request in one transaction: on any error nothing changes.
func Define(ctx context.Context, s Store, d Definition) (*DefineResult, error) {
	ot, err := LookupObjectType(d.Type)
	if err != nil {
		return nil, err
	}
	if len(d.Names) == 0 {
		return nil, errors.New("no object names were given")
	}
	if d.NewName != "" && len(d.Names) != 1 {
		return nil, fmt.Errorf("-n renames one object; %d were given", len(d.Names))
	}
	res := &DefineResult{}
	err = s.Update(ctx, func(tx Tx) error {
		// Conditions (only_if) may be met through inheritance: resolve them against a
		// view of the current state read inside this transaction.
		v, err := viewInTx(ctx, tx)
		if err != nil {
			return err
		}
		w := &definer{tx: tx, v: v, ot: ot, d: d, res: res}
		return w.run()
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// viewInTx builds a full View from inside a transaction.
func viewInTx(_ context.Context, tx Tx) (*View, error) {
	v := newView()
	used, err := viewTables(tx)
	if err != nil {
		return nil, err
	}
	for i := range schema {
		if !used[schema[i].Name] {
			continue
		}
		rows, err := tx.Rows(schema[i].Name, nil)
		if err != nil {
			return nil, err
		}
		v.add(&schema[i], rows)
	}
	v.finish(context.Background(), nil)
	return v, nil
}

type definer struct {
	tx  Tx
	v   *View
	ot  *ObjectType
	d   Definition
	res *DefineResult
}

func (w *definer) run() error {
	for _, a := range w.d.Attrs {
		if err := w.checkAttr(a.Attr); err != nil {
			return err
		}
	}
	for _, name := range w.d.Names {
		exists, err := w.exists(name)
		if err != nil {
			return err
		}
		switch {
		case exists && w.d.Mode == ModeCreate:
			return fmt.Errorf("%s definition '%s' %w; use -f to replace it", w.ot.Name, name, ErrExists)
		case exists && w.d.Mode == ModeReplace:
			if err := removeObject(w.tx, w.v, w.ot, name); err != nil {
				return err
			}
			exists = false
		}
		if err := w.define(name, exists); err != nil {
			return err
		}
		if exists {
			w.res.Modified = append(w.res.Modified, name)
		} else {
			w.res.Created = append(w.res.Created, name)
		}
	}
	if w.d.NewName != "" {
		return renameObject(w.tx, w.v, w.ot, w.d.Names[0], w.d.NewName)
	}
	return nil
}

// checkAttr rejects attributes the object type does not have.
func (w *definer) checkAttr(attr string) error {
	base, _, _ := strings.Cut(attr, ".")
	if w.ot.Name == "site" {
		if attr == "" || strings.ContainsAny(attr, " \t") {
			return fmt.Errorf("invalid site attribute %q", attr)
		}
		return nil
	}
	if len(w.ot.Attr(base)) == 0 {
		return fmt.Errorf("'%s' is not a valid attribute name for an object type of '%s'", attr, w.ot.Name)
	}
	if base != attr && !slices.Contains(nicsColumns, base) {
		return fmt.Errorf("'%s' is not a valid attribute name for an object type of '%s'", attr, w.ot.Name)
	}
	return nil
}

func (w *definer) exists(name string) (bool, error) {
	switch w.ot.Name {
	case "node":
		return w.v.IsNode(name), nil
	case "group":
		return w.v.nodegroups[name] != nil || len(w.v.members[name]) > 0, nil
	case "site":
		if name != SiteObjectName {
			return false, fmt.Errorf("the site object is called %s, not %q", SiteObjectName, name)
		}
		return true, nil
	}
	return w.v.objectRows(w.ot, name) != nil, nil
}

// given returns the value this request assigns to attr, if any.
func (w *definer) given(attr string) (string, bool) {
	val, ok := "", false
	for _, a := range w.d.Attrs {
		if a.Attr == attr {
			val, ok = a.Value, true
		}
	}
	return val, ok
}

// pickDefs chooses among the definitions of attr those that apply to object name: the
// unconditional ones and those whose only_if holds, looking first at this request's values.
// A value is written to each, as xCAT does (nodetype=pdu is stored in nodetype.nodetype and
// pdu.nodetype; id=4 of a blade in ppc.id and mp.id). None applying is an error.
func (w *definer) pickDefs(name string, defs []AttrDef) ([]AttrDef, error) {
	var conds []string
	var out []AttrDef
	for _, a := range defs {
		if a.OnlyIf == "" {
			out = append(out, a)
			continue
		}
		k, want, _ := strings.Cut(a.OnlyIf, "=")
		got, ok := w.given(k)
		if !ok {
			switch w.ot.Name {
			case "node":
				got = w.v.plainAttr(name, k)
			case "group":
				got = ""
				if w.v.groupCondHolds(name, a.OnlyIf) {
					got = want
				}
			case "osimage":
				if rows := w.v.objectRows(w.ot, name); rows != nil {
					got = rows["osimage"][k]
				} else if k == "imagetype" {
					got = "linux" // a new osimage is a Linux image unless told otherwise
				}
			}
		}
		hit := strings.EqualFold(got, want)
		if k == "nodetype" {
			hit = slices.ContainsFunc(splitList(got), func(s string) bool { return strings.EqualFold(s, want) })
		}
		if hit {
			out = append(out, a)
			continue
		}
		conds = append(conds, a.OnlyIf)
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, fmt.Errorf("Cannot set the attribute '%s' for %s '%s': it needs %s", defs[0].Name, w.ot.Name, name, strings.Join(conds, " or "))
}

// listEdit applies -p (append) or -m (remove) to a comma list.
func listEdit(mode DefineMode, old, val string) string {
	switch mode {
	case ModeAppend:
		return mergeList(old, val)
	case ModeRemove:
		drop := map[string]bool{}
		for _, it := range splitList(val) {
			drop[it] = true
		}
		var keep []string
		for _, it := range splitList(old) {
			if !drop[it] {
				keep = append(keep, it)
			}
		}
		return strings.Join(keep, ",")
	}
	return val
}

// mergeList appends the items of add to the comma list old, without duplicates, keeping
// first-seen order (chtab's +=, chdef -p).
func mergeList(old, add string) string {
	var items []string
	seen := map[string]bool{}
	for _, it := range append(strings.Split(old, ","), strings.Split(add, ",")...) {
		if it != "" && !seen[it] {
			seen[it] = true
			items = append(items, it)
		}
	}
	return strings.Join(items, ",")
}

func (w *definer) define(name string, exists bool) error {
	switch w.ot.Name {
	case "node":
		return w.defineNode(name, exists)
	case "group":
		return w.defineGroup(name, exists)
	case "site":
		for _, a := range w.d.Attrs {
			old := w.v.site[a.Attr]
			if _, err := w.tx.Set("site", Row{"key": a.Attr}, Row{"value": listEdit(w.d.Mode, old, a.Value)}); err != nil {
				return err
			}
		}
		return nil
	case "network":
		return w.defineNetwork(name, exists)
	default: // osimage, policy
		return w.defineKeyed(name)
	}
}

// writeAttrs writes the request's attributes of an object kept in node-keyed tables
// (a node, or a group's rows) under key name.
func (w *definer) writeAttrs(name string, raw func(table, col string) string) error {
	tables := map[string]Row{}
	nicSets := map[string]map[string]string{}
	for _, a := range w.d.Attrs {
		base, nic, isNic := strings.Cut(a.Attr, ".")
		defs, err := w.pickDefs(name, w.ot.Attr(base))
		if err != nil {
			return err
		}
		for _, def := range defs {
			if def.Table == "nodegroup" || def.Table == "nodelist" && w.ot.Name == "group" {
				continue
			}
			if isNic {
				if nicSets[def.Column] == nil {
					nicSets[def.Column] = map[string]string{}
				}
				nicSets[def.Column][nic] = a.Value
				continue
			}
			row := tables[def.Table]
			if row == nil {
				row = Row{}
				tables[def.Table] = row
			}
			old, ok := row[def.Column]
			if !ok {
				old = raw(def.Table, def.Column)
			}
			row[def.Column] = listEdit(w.d.Mode, old, a.Value)
		}
	}
	for col, set := range nicSets {
		row := tables["nics"]
		if row == nil {
			row = Row{}
			tables["nics"] = row
		}
		old, ok := row[col]
		if !ok {
			old = raw("nics", col)
		}
		row[col] = joinNicValue(old, set)
	}
	for _, t := range sortedKeys(tables) {
		tab, _ := LookupTable(t)
		key := Row{tab.NodeColumn(): name}
		if _, err := w.tx.Set(t, key, tables[t]); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (w *definer) defineNode(name string, exists bool) error {
	if !exists {
		if g, ok := w.given("groups"); !ok || g == "" {
			return fmt.Errorf("node '%s': the attribute 'groups' is required to define a new node", name)
		}
	}
	for _, a := range w.d.Attrs {
		if (a.Attr == "postscripts" || a.Attr == "postbootscripts") && w.d.Mode != ModeRemove {
			def := w.v.keyed["postscripts"]["xcatdefaults"]
			for _, it := range splitList(a.Value) {
				if def != nil && slices.Contains(splitList(def[a.Attr]), it) {
					w.res.Warnings = append(w.res.Warnings, fmt.Sprintf("%s: %s '%s' is already included in the 'xcatdefaults'.", name, a.Attr, it))
				}
			}
		}
	}
	raw := func(table, col string) string {
		if table == "nodelist" {
			if r := w.v.nodes[name]; r != nil {
				return r.row[col]
			}
			return ""
		}
		return w.v.GroupColumn(name, table, col)
	}
	if !exists {
		if _, err := w.tx.Set("nodelist", Row{"node": name}, Row{}); err != nil {
			return err
		}
	}
	return w.writeAttrs(name, raw)
}

func (w *definer) defineGroup(name string, exists bool) error {
	// Group rows for the node-keyed tables.
	if err := w.writeAttrs(name, func(table, col string) string { return w.v.GroupColumn(name, table, col) }); err != nil {
		return err
	}
	ng := Row{}
	if w.d.Dynamic {
		for _, c := range w.d.Where {
			if _, err := ParseWhere(c); err != nil {
				return fmt.Errorf("group %s: -w %q: %w", name, c, err)
			}
		}
		old := ""
		if r := w.v.nodegroups[name]; r != nil {
			old = r["wherevals"]
		}
		wv := strings.Join(w.d.Where, "::")
		if w.d.Mode == ModeAppend && old != "" {
			wv = old + "::" + wv
		}
		ng["grouptype"], ng["members"], ng["wherevals"] = "dynamic", "dynamic", wv
	} else if r := w.v.nodegroups[name]; r == nil || r["grouptype"] != "dynamic" {
		ng["grouptype"], ng["members"] = "static", "static"
	}
	for _, a := range w.d.Attrs {
		if a.Attr == "grouptype" || a.Attr == "members" || a.Attr == "wherevals" {
			continue
		}
		for _, def := range w.ot.Attr(a.Attr) {
			if def.Table == "nodegroup" {
				ng[def.Column] = a.Value
			}
		}
	}
	if _, err := w.tx.Set("nodegroup", Row{"groupname": name}, ng); err != nil {
		return err
	}
	members, ok := w.given("members")
	if !ok {
		return nil
	}
	if w.d.Dynamic || w.v.nodegroups[name] != nil && w.v.nodegroups[name]["grouptype"] == "dynamic" {
		return fmt.Errorf("group %s is dynamic: its members come from -w, not members=", name)
	}
	want := splitList(members)
	for _, n := range want {
		if !w.v.IsNode(n) {
			return fmt.Errorf("group %s: member %q is not a node", name, n)
		}
	}
	current := w.v.members[name]
	var add, drop []string
	switch w.d.Mode {
	case ModeAppend:
		add = want
	case ModeRemove:
		drop = want
	default:
		add = want
		for _, n := range current {
			if !slices.Contains(want, n) {
				drop = append(drop, n)
			}
		}
	}
	for _, n := range add {
		gs := w.v.NodeGroups(n)
		if !slices.Contains(gs, name) {
			if _, err := w.tx.Set("nodelist", Row{"node": n}, Row{"groups": strings.Join(append(slices.Clone(gs), name), ",")}); err != nil {
				return err
			}
		}
	}
	for _, n := range drop {
		if err := removeFromGroups(w.tx, w.v, n, name); err != nil {
			return err
		}
	}
	return nil
}

// removeFromGroups takes group out of node's nodelist.groups (exact names only).
func removeFromGroups(tx Tx, v *View, node, group string) error {
	gs := v.NodeGroups(node)
	if !slices.Contains(gs, group) {
		return nil
	}
	keep := slices.DeleteFunc(slices.Clone(gs), func(g string) bool { return g == group })
	_, err := tx.Set("nodelist", Row{"node": node}, Row{"groups": strings.Join(keep, ",")})
	return err
}

func (w *definer) defineNetwork(name string, exists bool) error {
	vals := Row{}
	for _, a := range w.d.Attrs {
		def := w.ot.Attr(a.Attr)[0]
		old := ""
		if rows := w.v.objectRows(w.ot, name); rows != nil {
			old = rows["networks"][def.Column]
		}
		vals[def.Column] = listEdit(w.d.Mode, old, a.Value)
	}
	if exists {
		_, err := w.tx.Set("networks", Row{"netname": name}, vals)
		return err
	}
	if vals["net"] == "" || vals["mask"] == "" {
		return fmt.Errorf("network '%s': Net or mask value should not be empty", name)
	}
	for _, r := range w.v.rows["networks"] {
		if r["net"] == vals["net"] && r["mask"] == vals["mask"] {
			return fmt.Errorf("A network definition called '%s' already exists that contains the same net and mask values. Cannot create a definition for '%s'", r["netname"], name)
		}
	}
	vals["netname"] = name
	_, err := w.tx.Set("networks", Row{"net": vals["net"], "mask": vals["mask"]}, vals)
	return err
}

// defineKeyed writes an osimage or policy object.
func (w *definer) defineKeyed(name string) error {
	rows := w.v.objectRows(w.ot, name)
	tables := map[string]Row{}
	if rows == nil && w.ot.Name == "osimage" {
		if _, ok := w.given("imagetype"); !ok {
			tables["osimage"] = Row{"imagetype": "linux"}
		}
	}
	for _, a := range w.d.Attrs {
		defs, err := w.pickDefs(name, w.ot.Attr(a.Attr))
		if err != nil {
			return err
		}
		for _, def := range defs {
			row := tables[def.Table]
			if row == nil {
				row = Row{}
				tables[def.Table] = row
			}
			old := ""
			if rows != nil && rows[def.Table] != nil {
				old = rows[def.Table][def.Column]
			}
			row[def.Column] = listEdit(w.d.Mode, old, a.Value)
		}
	}
	if tables[w.ot.Table] == nil {
		tables[w.ot.Table] = Row{}
	}
	for _, t := range sortedKeys(tables) {
		tab, _ := LookupTable(t)
		if _, err := w.tx.Set(t, Row{tab.Keys[0]: name}, tables[t]); err != nil {
			return err
		}
	}
	return nil
}

// RemoveObjects deletes objects (rmdef) in one transaction.
func RemoveObjects(ctx context.Context, s Store, typ string, names []string) error {
	ot, err := LookupObjectType(typ)
	if err != nil {
		return err
	}
	return s.Update(ctx, func(tx Tx) error {
		v, err := viewInTx(ctx, tx)
		if err != nil {
			return err
		}
		for _, n := range names {
			if ok, _ := (&definer{v: v, ot: ot}).exists(n); !ok {
				return fmt.Errorf("Could not find an object named '%s' of type '%s'.: %w", n, ot.Name, ErrNotFound)
			}
			if err := removeObject(tx, v, ot, n); err != nil {
				return err
			}
		}
		return nil
	})
}

func removeObject(tx Tx, v *View, ot *ObjectType, name string) error {
	switch ot.Name {
	case "node":
		return deleteNodeRows(tx, name)
	case "group":
		for _, n := range v.members[name] {
			if err := removeFromGroups(tx, v, n, name); err != nil {
				return err
			}
		}
		if _, err := tx.Delete("nodegroup", Row{"groupname": name}); err != nil {
			return err
		}
		return deleteNodeRows(tx, name)
	case "site":
		return errors.New("the site object cannot be removed")
	}
	seen := map[string]bool{}
	for _, a := range ot.Attrs {
		if seen[a.Table] {
			continue
		}
		seen[a.Table] = true
		if _, err := tx.Delete(a.Table, Row{a.Key: name}); err != nil {
			return err
		}
	}
	return nil
}

// deleteNodeRows removes name from nodelist and every node-keyed table (noderm).
func deleteNodeRows(tx Tx, name string) error {
	for i := range schema {
		t := &schema[i]
		if t.Name == "nodelist" || t.NodeKeyed() {
			if _, err := tx.Delete(t.Name, Row{t.NodeColumn(): name}); err != nil {
				return err
			}
		}
	}
	return nil
}

// renameObject renames a node (every node-keyed table) or another object (chdef -n).
func renameObject(tx Tx, v *View, ot *ObjectType, from, to string) error {
	if from == to {
		return nil
	}
	if ok, _ := (&definer{v: v, ot: ot}).exists(to); ok || ot.Name == "node" && v.IsGroup(to) {
		return fmt.Errorf("cannot rename %s '%s' to '%s': %w", ot.Name, from, to, ErrExists)
	}
	switch ot.Name {
	case "node":
		for i := range schema {
			t := &schema[i]
			if t.Name != "nodelist" && !t.NodeKeyed() {
				continue
			}
			col := t.NodeColumn()
			rows, err := tx.Rows(t.Name, Row{col: from})
			if err != nil {
				return err
			}
			if len(rows) > 0 {
				if _, err := tx.Set(t.Name, Row{col: from}, Row{col: to}); err != nil {
					return err
				}
			}
		}
		return nil
	case "group", "site":
		return fmt.Errorf("%s objects cannot be renamed", ot.Name)
	}
	seen := map[string]bool{}
	for _, a := range ot.Attrs {
		if seen[a.Table] {
			continue
		}
		seen[a.Table] = true
		rows, err := tx.Rows(a.Table, Row{a.Key: from})
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			if _, err := tx.Set(a.Table, Row{a.Key: from}, Row{a.Key: to}); err != nil {
				return err
			}
		}
	}
	return nil
}
