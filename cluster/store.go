package cluster

import (
	"context"
	"errors"
	"fmt"
)

// A Row is one table row: column name to value. An absent column and an empty value are
// the same thing, "unset", as in xCAT, where an empty string reads back as undef.
type Row map[string]string

// Clone returns a copy of r.
func (r Row) Clone() Row {
	c := make(Row, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

// Store holds the cluster tables. All access happens in transactions: View for reads,
// Update for writes. Update transactions are serialised, so a read-modify-write inside
// one (chtab's `+=`, chdef -p) never loses a concurrent update.
type Store interface {
	View(ctx context.Context, fn func(Tx) error) error
	Update(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Tx reads and writes tables inside a transaction. Table and column names are checked
// against the schema; an unknown name is an error that names it.
type Tx interface {
	// Rows returns the rows of table whose columns equal every value in match (all rows
	// when match is empty), in insertion order, disabled rows included. An empty value in
	// match selects rows where that column is unset.
	Rows(table string, match Row) ([]Row, error)
	// Set is xCAT's setAttribs: it writes vals into every row that matches key, or, when
	// none matches, inserts one row made of key and vals. It reports whether it inserted.
	Set(table string, key, vals Row) (inserted bool, err error)
	// Put upserts rows by the table's key columns: each row must carry all key columns;
	// the other columns present in the row are written and absent ones are left as they
	// are on an existing row. Put batches, so it is the fast way to write many rows.
	Put(table string, rows ...Row) error
	// Delete removes the rows that match (every row when match is empty) and returns how
	// many it removed.
	Delete(table string, match Row) (int, error)
}

// Errors callers branch on.
var (
	// ErrUnknownTable is returned (wrapped, naming the table) for a table not in the schema.
	ErrUnknownTable = errors.New("unknown table")
	// ErrUnknownColumn is returned (wrapped, naming table and column) for a bad column.
	ErrUnknownColumn = errors.New("unknown column")
	// ErrNotFound is returned when a named object, node or row does not exist.
	ErrNotFound = errors.New("not found")
)

// tableOf resolves name against the schema.
func tableOf(name string) (*Table, error) {
	t, ok := LookupTable(name)
	if !ok {
		return nil, fmt.Errorf("table %q: %w", name, ErrUnknownTable)
	}
	return t, nil
}

// checkCols verifies every column of r exists in t.
func checkCols(t *Table, r Row) error {
	for c := range r {
		if !t.HasColumn(c) {
			return fmt.Errorf("no column %q in table %q: %w", c, t.Name, ErrUnknownColumn)
		}
	}
	return nil
}
