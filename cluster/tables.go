package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// ParseChtab splits chtab's arguments (shared/xcat/formats.md §3) into the key selector and
// the assignments, checking every name against the schema.
//
//	chtab [keycol=keyval[,keycol=keyval...]] table.col=value|table.col+=value ...
func ParseChtab(args []string) (key Row, sets []ColumnAssign, err error) {
	if len(args) == 0 {
		return nil, nil, errors.New("Usage: chtab [keycolname=keyvalue[,keycolname=keyvalue...]] [tablename.columnname=value] [tablename.columnname+=value] ...")
	}
	if lhs, _, _ := strings.Cut(args[0], "="); !strings.Contains(lhs, ".") {
		if key, err = ParseKeySelector(args[0]); err != nil {
			return nil, nil, err
		}
		args = args[1:]
	} else {
		key = Row{}
	}
	if len(args) == 0 {
		return nil, nil, errors.New("chtab: nothing to change: give table.column=value")
	}
	for _, a := range args {
		ca, err := ParseColumnAssign(a)
		if err != nil {
			return nil, nil, fmt.Errorf("chtab: %w", err)
		}
		sets = append(sets, ca)
	}
	return key, sets, nil
}

// ParseKeySelector parses chtab's key selector "keycol=keyval[,keycol=keyval...]".
func ParseKeySelector(s string) (Row, error) {
	key := Row{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("chtab: key selector %q: want keycol=keyval", kv)
		}
		key[k] = v
	}
	return key, nil
}

// A ColumnAssign is one table.col=value of chtab, nodeadd or nodech.
type ColumnAssign struct {
	Table, Column string
	// Op is "=" (set), "+=" (chtab: merge into the comma list), ",=" (nodech: append to
	// the comma list) or "^=" (nodech: remove from the comma list).
	Op    string
	Value string
}

// ParseColumnAssign parses "table.col=value" (and +=, ,=, ^=, =@) and checks the names.
// "groups=..." is short for nodelist.groups.
func ParseColumnAssign(s string) (ColumnAssign, error) {
	i := strings.IndexByte(s, '=')
	if i <= 0 {
		return ColumnAssign{}, fmt.Errorf("%q: want table.column=value", s)
	}
	lhs, val := s[:i], s[i+1:]
	op := "="
	if n := len(lhs); n > 0 && strings.ContainsRune("+,^", rune(lhs[n-1])) {
		op, lhs = lhs[n-1:]+"=", lhs[:n-1]
	}
	if op == "=" && strings.HasPrefix(val, "@") {
		val = val[1:] // nodech's explicit assignment "=@value"
	}
	if lhs == "groups" {
		lhs = "nodelist.groups"
	}
	tab, col, ok := strings.Cut(lhs, ".")
	if !ok || tab == "" || col == "" {
		return ColumnAssign{}, fmt.Errorf("%q: want table.column=value", s)
	}
	t, err := tableOf(tab)
	if err != nil {
		return ColumnAssign{}, fmt.Errorf("%q: %w", s, err)
	}
	if !t.HasColumn(col) {
		return ColumnAssign{}, fmt.Errorf("%q: no column %q in table %q: %w", s, col, tab, ErrUnknownColumn)
	}
	return ColumnAssign{Table: tab, Column: col, Op: op, Value: val}, nil
}

// apply computes the new value of a column from its old one.
func (a ColumnAssign) apply(old string) string {
	switch a.Op {
	case "+=", ",=":
		return mergeList(old, a.Value)
	case "^=":
		return listEdit(ModeRemove, old, a.Value)
	}
	return a.Value
}

// Chtab applies chtab's key selector and assignments in one transaction (xCAT commits
// each table separately; one transaction means a failure changes nothing at all).
func Chtab(ctx context.Context, s Store, key Row, sets []ColumnAssign) error {
	byTable := map[string][]ColumnAssign{}
	var order []string
	for _, a := range sets {
		if byTable[a.Table] == nil {
			order = append(order, a.Table)
		}
		byTable[a.Table] = append(byTable[a.Table], a)
	}
	for _, t := range order {
		tab, _ := LookupTable(t)
		for k := range key {
			if !tab.HasColumn(k) {
				return fmt.Errorf("No column \"%s\" in table \"%s\"", k, t)
			}
		}
	}
	return s.Update(ctx, func(tx Tx) error {
		for _, t := range order {
			if err := chtabTable(tx, t, key, byTable[t]); err != nil {
				return err
			}
		}
		return nil
	})
}

func chtabTable(tx Tx, table string, key Row, sets []ColumnAssign) error {
	rows, err := tx.Rows(table, key)
	if err != nil {
		return err
	}
	tab, _ := LookupTable(table)
	if len(rows) == 0 {
		vals := Row{}
		for _, a := range sets {
			vals[a.Column] = a.apply(vals[a.Column])
		}
		_, err := tx.Set(table, key, vals)
		return err
	}
	for _, r := range rows {
		vals := Row{}
		for _, a := range sets {
			old, ok := vals[a.Column]
			if !ok {
				old = r[a.Column]
			}
			vals[a.Column] = a.apply(old)
		}
		k := Row{}
		for _, c := range tab.Keys {
			k[c] = r[c]
		}
		if _, err := tx.Set(table, k, vals); err != nil {
			return err
		}
	}
	return nil
}

// ChtabDelete deletes the rows of each table that match key (chtab -d). Tables that do not
// exist are reported together, and then nothing is deleted.
func ChtabDelete(ctx context.Context, s Store, key Row, tables []string) (int, error) {
	var bad []string
	for _, t := range tables {
		if _, ok := LookupTable(t); !ok {
			bad = append(bad, fmt.Sprintf("Table %s does not exist.", t))
		}
	}
	if len(bad) > 0 {
		return 0, fmt.Errorf("%s: %w", strings.Join(bad, " "), ErrUnknownTable)
	}
	n := 0
	err := s.Update(ctx, func(tx Tx) error {
		for _, t := range tables {
			m, err := tx.Delete(t, key)
			if err != nil {
				return err
			}
			n += m
		}
		return nil
	})
	return n, err
}

// Tabdump writes table as tabdump does (shared/xcat/formats.md §1): the header, then every
// row in insertion order, disabled rows included. With filters (tabdump -w), only the
// enabled rows that match all of them are written.
func Tabdump(ctx context.Context, s Store, table string, filters []Where, w io.Writer) error {
	tab, err := tableOf(table)
	if err != nil {
		return fmt.Errorf("tabdump: %w", err)
	}
	matchers := make([]*WhereMatcher, len(filters))
	for i, f := range filters {
		if !tab.HasColumn(f.Attr) {
			return fmt.Errorf("tabdump: -w %s: no column %q in table %q: %w", f, f.Attr, table, ErrUnknownColumn)
		}
		if matchers[i], err = f.Compile(); err != nil {
			return fmt.Errorf("tabdump: -w %s: %w", f, err)
		}
	}
	var rows []Row
	if err := s.View(ctx, func(tx Tx) (err error) {
		rows, err = tx.Rows(table, nil)
		return err
	}); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw, err := NewCSVWriter(bw, tab.Columns)
	if err != nil {
		return err
	}
	rec := make([]string, len(tab.Columns))
next:
	for _, r := range rows {
		if len(matchers) > 0 && IsDisabled(r["disable"]) {
			continue
		}
		for _, m := range matchers {
			if !m.MatchTabdump(r[m.Where().Attr]) {
				continue next
			}
		}
		for i, c := range tab.Columns {
			rec[i] = r[c]
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// TableFromFile returns the table a tabrestore file is for: its base name up to the
// first "." (/tmp/site.csv and nodelist.2024.csv restore site and nodelist).
func TableFromFile(path string) string {
	base := filepath.Base(path)
	name, _, _ := strings.Cut(base, ".")
	return name
}

// Tabrestore replaces table with the rows of a tabdump file read from r (or, with add,
// adds and updates rows by key). It is atomic: any bad line, unknown column or duplicate
// key aborts with nothing changed, and the error names the line.
func Tabrestore(ctx context.Context, s Store, table string, r io.Reader, add bool) (int, error) {
	tab, err := tableOf(table)
	if err != nil {
		return 0, fmt.Errorf("tabrestore: %w", err)
	}
	cr, err := NewCSVReader(r)
	if err != nil {
		return 0, fmt.Errorf("tabrestore %s: %w", table, err)
	}
	header := cr.Header()
	for _, c := range header {
		if !tab.HasColumn(c) {
			return 0, fmt.Errorf("tabrestore %s: the file's header names column %q, which table %s does not have: %w", table, c, table, ErrUnknownColumn)
		}
	}
	var rows []Row
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("tabrestore %s: %w", table, err)
		}
		row := make(Row, len(header))
		for i, c := range header {
			row[c] = rec[i]
		}
		var kb strings.Builder
		for _, k := range tab.Keys {
			if row[k] == "" {
				return 0, fmt.Errorf("tabrestore %s: line %d: key column %q is empty", table, cr.line, k)
			}
			kb.WriteString(row[k] + "\x00")
		}
		if prev, dup := seen[kb.String()]; dup {
			return 0, fmt.Errorf("tabrestore %s: line %d: the key of line %d again", table, cr.line, prev)
		}
		seen[kb.String()] = cr.line
		rows = append(rows, row)
	}
	err = s.Update(ctx, func(tx Tx) error {
		if !add {
			if _, err := tx.Delete(table, nil); err != nil {
				return err
			}
		}
		return tx.Put(table, rows...)
	})
	if err != nil {
		return 0, fmt.Errorf("tabrestore %s: %w", table, err)
	}
	return len(rows), nil
}

// deleteIner is the optional capability of a Tx to delete rows whose column is one of a
// set of values in one statement (the SQL store has it).
type deleteIner interface {
	DeleteIn(table, col string, vals []string) (int, error)
}

// Noderm removes nodes from nodelist and every node-keyed table.
func Noderm(ctx context.Context, s Store, nodes []string) error {
	return s.Update(ctx, func(tx Tx) error {
		for i := range schema {
			t := &schema[i]
			if t.Name != "nodelist" && !t.NodeKeyed() {
				continue
			}
			col := t.NodeColumn()
			if d, ok := tx.(deleteIner); ok {
				if _, err := d.DeleteIn(t.Name, col, nodes); err != nil {
					return err
				}
				continue
			}
			for _, n := range nodes {
				if _, err := tx.Delete(t.Name, Row{col: n}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Nodeadd creates nodes (or updates them when they exist) with the given column values,
// as nodeadd does; nodelist.groups is required. The whole range is written in one batched
// transaction.
func Nodeadd(ctx context.Context, s Store, nodes []string, sets []ColumnAssign) error {
	hasGroups := false
	for _, a := range sets {
		if a.Table == "nodelist" && a.Column == "groups" && a.Value != "" {
			hasGroups = true
		}
		if a.Op != "=" {
			return fmt.Errorf("nodeadd: %s.%s%s: nodeadd only sets values (=)", a.Table, a.Column, a.Op)
		}
		if t, _ := LookupTable(a.Table); a.Table != "nodelist" && !t.NodeKeyed() {
			return fmt.Errorf("nodeadd: table %s is not keyed by node", a.Table)
		}
	}
	if !hasGroups {
		return errors.New("nodeadd: groups is required: give groups=... (nodelist.groups)")
	}
	for _, n := range nodes {
		if err := checkNodeName(n); err != nil {
			return fmt.Errorf("nodeadd: %w", err)
		}
	}
	byTable := map[string]Row{}
	for _, a := range sets {
		if byTable[a.Table] == nil {
			byTable[a.Table] = Row{}
		}
		byTable[a.Table][a.Column] = a.Value
	}
	return s.Update(ctx, func(tx Tx) error {
		for _, t := range sortedKeys(byTable) {
			col := schemaTable(t).NodeColumn()
			rows := make([]Row, len(nodes))
			for i, n := range nodes {
				r := byTable[t].Clone()
				r[col] = n
				rows[i] = r
			}
			if err := tx.Put(t, rows...); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkNodeName rejects names that could never be used as node names.
func checkNodeName(n string) error {
	if n == "" || strings.ContainsAny(n, " \t\n,/\\\"'@^()[]|!=") || strings.HasPrefix(n, "-") {
		return fmt.Errorf("invalid node name %q", n)
	}
	return nil
}

// Nodech changes columns of existing nodes (nodech): "=" sets, ",=" appends to a comma list,
// "^=" removes from it. Values are written on each node's own row.
func Nodech(ctx context.Context, s Store, nodes []string, sets []ColumnAssign) error {
	for _, a := range sets {
		if t, _ := LookupTable(a.Table); a.Table != "nodelist" && !t.NodeKeyed() {
			return fmt.Errorf("nodech: table %s is not keyed by node", a.Table)
		}
	}
	return s.Update(ctx, func(tx Tx) error {
		for _, n := range nodes {
			cur := map[string]Row{}
			for _, a := range sets {
				if _, ok := cur[a.Table]; !ok {
					rows, err := tx.Rows(a.Table, Row{schemaTable(a.Table).NodeColumn(): n})
					if err != nil {
						return err
					}
					cur[a.Table] = Row{}
					if len(rows) > 0 {
						cur[a.Table] = rows[0]
					}
				}
			}
			vals := map[string]Row{}
			for _, a := range sets {
				if vals[a.Table] == nil {
					vals[a.Table] = Row{}
				}
				old, ok := vals[a.Table][a.Column]
				if !ok {
					old = cur[a.Table][a.Column]
				}
				vals[a.Table][a.Column] = a.apply(old)
			}
			for _, t := range sortedKeys(vals) {
				if _, err := tx.Set(t, Row{schemaTable(t).NodeColumn(): n}, vals[t]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// NodechDelete deletes the nodes' rows from the named tables (nodech -d).
func NodechDelete(ctx context.Context, s Store, nodes, tables []string) error {
	for _, t := range tables {
		tab, err := tableOf(t)
		if err != nil {
			return fmt.Errorf("nodech -d: %w", err)
		}
		if !tab.NodeKeyed() {
			return fmt.Errorf("nodech -d: table %s is not keyed by node", t)
		}
	}
	return s.Update(ctx, func(tx Tx) error {
		for _, t := range tables {
			col := schemaTable(t).NodeColumn()
			for _, n := range nodes {
				if _, err := tx.Delete(t, Row{col: n}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// schemaTable returns the table called name, which the caller has already checked exists.
func schemaTable(name string) *Table {
	t, _ := LookupTable(name)
	return t
}
