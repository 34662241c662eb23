package cluster

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite", no cgo
)

// DB is the Store over database/sql. One implementation serves both backends: SQLite
// (embedded, one file, WAL, busy timeout) and PostgreSQL (shared between management nodes).
type DB struct {
	db      *sql.DB
	dialect dialect
	source  string // the DSN with any password removed, for messages
}

var _ Store = (*DB)(nil)

type dialect struct {
	name      string // "sqlite" or "postgres"
	ridColumn string
	// maxVars bounds the bind variables of one statement.
	maxVars int
}

func (d dialect) ph(i int) string {
	if d.name == "postgres" {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

var (
	sqliteDialect   = dialect{name: "sqlite", ridColumn: "rid INTEGER PRIMARY KEY", maxVars: 30000}
	postgresDialect = dialect{name: "postgres", ridColumn: "rid BIGSERIAL PRIMARY KEY", maxVars: 60000}
)

// DefaultDSN is the store used when neither --db nor PROVKIT_DB says otherwise.
const DefaultDSN = "provkit.db"

// IsPostgresDSN reports whether dsn selects the PostgreSQL backend.
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens (creating and migrating as needed) the store at dsn: a postgres:// or
// postgresql:// URL selects PostgreSQL, anything else is the path of a SQLite file.
// A fresh store is filled with xCAT's defaults (site keys, the xcatdefaults postscripts
// row, policy rows).
func Open(ctx context.Context, dsn string) (*DB, error) {
	s := &DB{source: redact(dsn)}
	var err error
	if IsPostgresDSN(dsn) {
		s.dialect = postgresDialect
		s.db, err = sql.Open("pgx", dsn)
		if err == nil {
			s.db.SetMaxOpenConns(8)
			s.db.SetMaxIdleConns(8)
		}
	} else {
		s.dialect = sqliteDialect
		if dsn == "" {
			dsn = DefaultDSN
		}
		if dir := filepath.Dir(dsn); dir != "." {
			if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
				return nil, fmt.Errorf("cluster: open %s: directory %s does not exist", dsn, dir)
			}
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(60000)")
		q.Add("_pragma", "journal_mode(WAL)")
		// NORMAL in WAL mode survives a killed process; a power loss may lose the last
		// commits but never corrupts the file.
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate") // writers take the lock at BEGIN: no upgrade deadlocks
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?"+q.Encode())
		if err == nil {
			s.db.SetMaxOpenConns(4)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: open %s: %w", s.source, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("cluster: open %s: %w", s.source, err)
	}
	return s, nil
}

// redact removes a password from a URL DSN.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return dsn
}

// Backend returns "sqlite" or "postgres".
func (s *DB) Backend() string { return s.dialect.name }

// String returns the store's DSN without its password.
func (s *DB) String() string { return s.source }

// Close closes the store.
func (s *DB) Close() error { return s.db.Close() }

// Generation returns a number that grows with every committed Update, so that readers
// holding derived state (provd's indexes) can tell cheaply whether anything changed.
func (s *DB) Generation(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT n FROM provkit_generation WHERE id = 1`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("cluster: generation: %w", err)
	}
	return n, nil
}

// View runs fn in a read-only transaction that sees one consistent state.
func (s *DB) View(ctx context.Context, fn func(Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect.name == "postgres" {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("cluster: begin: %w", err)
	}
	defer tx.Rollback()
	return fn(&sqlTx{tx: tx, ctx: ctx, d: s.dialect})
}

// Update runs fn in a write transaction and commits it if fn returns nil; any error rolls
// everything back. Update transactions are serialised across processes (SQLite's write
// lock taken at BEGIN; a row lock on PostgreSQL), so read-modify-write is safe.
func (s *DB) Update(ctx context.Context, fn func(Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cluster: begin: %w", err)
	}
	defer tx.Rollback()
	// Taking the generation row first serialises writers on PostgreSQL as well.
	if _, err := tx.ExecContext(ctx, `UPDATE provkit_generation SET n = n + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("cluster: begin: %w", err)
	}
	if err := fn(&sqlTx{tx: tx, ctx: ctx, d: s.dialect}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cluster: commit: %w", err)
	}
	return nil
}

// schemaFingerprint changes whenever the schema (tables, columns, keys) changes, so an
// up-to-date store skips migration on open.
func schemaFingerprint() string {
	h := sha256.New()
	for _, t := range schema {
		fmt.Fprintf(h, "%s|%s|%s|%s\n", t.Name, strings.Join(t.Columns, ","), strings.Join(t.Keys, ","), strings.Join(t.NotNull, ","))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// migrate creates missing tables and columns and, on a fresh store, the defaults.
func (s *DB) migrate(ctx context.Context) error {
	want := schemaFingerprint()
	var have string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM provkit_meta WHERE name = 'schema'`).Scan(&have)
	if err == nil && have == want {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if s.dialect.name == "postgres" {
		// Two processes opening a fresh database at once must not race on CREATE TABLE.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7368021)`); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS provkit_meta (name TEXT PRIMARY KEY, value TEXT)`,
		`CREATE TABLE IF NOT EXISTS provkit_generation (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	// Someone else may have migrated while we waited for the lock.
	if err := tx.QueryRowContext(ctx, `SELECT value FROM provkit_meta WHERE name = 'schema'`).Scan(&have); err == nil && have == want {
		return nil
	}
	fresh := errors.Is(tx.QueryRowContext(ctx, `SELECT value FROM provkit_meta WHERE name = 'created'`).Scan(new(string)), sql.ErrNoRows)
	for i := range schema {
		if err := s.migrateTable(ctx, tx, &schema[i]); err != nil {
			return fmt.Errorf("migrate %s: %w", schema[i].Name, err)
		}
	}
	if fresh {
		stx := &sqlTx{tx: tx, ctx: ctx, d: s.dialect}
		if err := fillDefaults(stx); err != nil {
			return fmt.Errorf("migrate: defaults: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO provkit_generation (id, n) VALUES (1, 1)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO provkit_meta (name, value) VALUES ('created', 'yes')`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM provkit_meta WHERE name = 'schema'`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO provkit_meta (name, value) VALUES ('schema', `+s.dialect.ph(1)+`)`, want); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return tx.Commit()
}

func quote(id string) string { return `"` + id + `"` }

func (s *DB) migrateTable(ctx context.Context, tx *sql.Tx, t *Table) error {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (%s", quote(t.Name), s.dialect.ridColumn)
	for _, c := range t.Columns {
		b.WriteString(", " + quote(c) + " TEXT")
		if t.IsKey(c) {
			b.WriteString(" NOT NULL")
		}
	}
	b.WriteString(", UNIQUE (")
	for i, k := range t.Keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(k))
	}
	b.WriteString("))")
	if _, err := tx.ExecContext(ctx, b.String()); err != nil {
		return err
	}
	// Add columns that a newer schema has and the stored table lacks.
	have := map[string]bool{}
	var rows *sql.Rows
	var err error
	if s.dialect.name == "postgres" {
		rows, err = tx.QueryContext(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, t.Name)
	} else {
		rows, err = tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, t.Name)
	}
	if err != nil {
		return err
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return err
		}
		have[c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range t.Columns {
		if !have[c] {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s TEXT", quote(t.Name), quote(c))); err != nil {
				return err
			}
		}
	}
	return nil
}

// sqlTx implements Tx over a database/sql transaction.
type sqlTx struct {
	tx  *sql.Tx
	ctx context.Context // the ctx of the View or Update call; Tx lives only inside it
	d   dialect
}

func (t *sqlTx) where(tab *Table, match Row, args []any) (string, []any, error) {
	if err := checkCols(tab, match); err != nil {
		return "", nil, err
	}
	if len(match) == 0 {
		return "", args, nil
	}
	keys := make([]string, 0, len(match))
	for k := range match {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(" WHERE ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" AND ")
		}
		if match[k] == "" {
			b.WriteString(quote(k) + " IS NULL")
			continue
		}
		args = append(args, match[k])
		b.WriteString(quote(k) + " = " + t.d.ph(len(args)))
	}
	return b.String(), args, nil
}

func (t *sqlTx) Rows(table string, match Row) ([]Row, error) {
	tab, err := tableOf(table)
	if err != nil {
		return nil, err
	}
	w, args, err := t.where(tab, match, nil)
	if err != nil {
		return nil, err
	}
	return t.query(tab, w, args)
}

// NonEmpty returns which of tables hold at least one row, in one statement.
func (t *sqlTx) NonEmpty(tables []string) (map[string]bool, error) {
	out := make(map[string]bool, len(tables))
	if len(tables) == 0 {
		return out, nil
	}
	var b strings.Builder
	args := make([]any, len(tables))
	for i, name := range tables {
		if _, err := tableOf(name); err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		args[i] = name
		// The literal is cast to text: PostgreSQL cannot infer a bare parameter's type here.
		fmt.Fprintf(&b, "SELECT CAST(%s AS TEXT) WHERE EXISTS (SELECT 1 FROM %s)", t.d.ph(i+1), quote(name))
	}
	rows, err := t.tx.QueryContext(t.ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("cluster: read table sizes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("cluster: read table sizes: %w", err)
		}
		out[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cluster: read table sizes: %w", err)
	}
	return out, nil
}

// RowsIn returns the rows of table whose column col is one of vals, in insertion order.
func (t *sqlTx) RowsIn(table, col string, vals []string) ([]Row, error) {
	tab, err := tableOf(table)
	if err != nil {
		return nil, err
	}
	if !tab.HasColumn(col) {
		return nil, fmt.Errorf("no column %q in table %q: %w", col, table, ErrUnknownColumn)
	}
	if len(vals) == 0 {
		return nil, nil
	}
	var out []Row
	for len(vals) > 0 {
		n := min(len(vals), 500)
		var b strings.Builder
		args := make([]any, n)
		b.WriteString(" WHERE " + quote(col) + " IN (")
		for i, v := range vals[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			args[i] = v
			b.WriteString(t.d.ph(i + 1))
		}
		b.WriteString(")")
		rows, err := t.query(tab, b.String(), args)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		vals = vals[n:]
	}
	return out, nil
}

func (t *sqlTx) query(tab *Table, where string, args []any) ([]Row, error) {
	var b strings.Builder
	b.WriteString("SELECT rid")
	for _, c := range tab.Columns {
		b.WriteString(", " + quote(c))
	}
	b.WriteString(" FROM " + quote(tab.Name) + where + " ORDER BY rid")
	rows, err := t.tx.QueryContext(t.ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("cluster: read %s: %w", tab.Name, err)
	}
	defer rows.Close()
	var out []Row
	vals := make([]sql.NullString, len(tab.Columns)+1)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("cluster: read %s: %w", tab.Name, err)
		}
		r := Row{}
		for i, c := range tab.Columns {
			if v := vals[i+1]; v.Valid && v.String != "" {
				r[c] = v.String
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cluster: read %s: %w", tab.Name, err)
	}
	return out, nil
}

func nullable(v string) any {
	if v == "" {
		return nil
	}
	return v
}

func (t *sqlTx) Set(table string, key, vals Row) (bool, error) {
	tab, err := tableOf(table)
	if err != nil {
		return false, err
	}
	if err := checkCols(tab, vals); err != nil {
		return false, err
	}
	w, wargs, err := t.where(tab, key, nil)
	if err != nil {
		return false, err
	}
	if len(vals) > 0 {
		cols := make([]string, 0, len(vals))
		for c := range vals {
			cols = append(cols, c)
		}
		slices.Sort(cols)
		var b strings.Builder
		args := make([]any, 0, len(cols)+len(wargs))
		b.WriteString("UPDATE " + quote(tab.Name) + " SET ")
		for i, c := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, nullable(vals[c]))
			b.WriteString(quote(c) + " = " + t.d.ph(len(args)))
		}
		// Renumber the WHERE placeholders after the SET ones.
		w2, wargs2, _ := t.where(tab, key, args)
		res, err := t.tx.ExecContext(t.ctx, b.String()+w2, wargs2...)
		if err != nil {
			return false, fmt.Errorf("cluster: update %s: %w", tab.Name, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return false, nil
		}
	} else {
		var one int
		err := t.tx.QueryRowContext(t.ctx, "SELECT 1 FROM "+quote(tab.Name)+w+" LIMIT 1", wargs...).Scan(&one)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("cluster: read %s: %w", tab.Name, err)
		}
	}
	row := key.Clone()
	for c, v := range vals {
		row[c] = v
	}
	if err := t.insert(tab, row); err != nil {
		return false, err
	}
	return true, nil
}

func (t *sqlTx) checkRow(tab *Table, r Row) error {
	for _, k := range tab.Keys {
		if r[k] == "" {
			return fmt.Errorf("table %s: key column %q must not be empty", tab.Name, k)
		}
	}
	return nil
}

func (t *sqlTx) insert(tab *Table, r Row) error {
	if err := t.checkRow(tab, r); err != nil {
		return err
	}
	for _, c := range tab.NotNull {
		if r[c] == "" {
			return fmt.Errorf("table %s: column %q must not be empty", tab.Name, c)
		}
	}
	cols := make([]string, 0, len(r))
	for c := range r {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	var b strings.Builder
	args := make([]any, len(cols))
	b.WriteString("INSERT INTO " + quote(tab.Name) + " (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(c))
		args[i] = nullable(r[c])
	}
	b.WriteString(") VALUES (")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.d.ph(i + 1))
	}
	b.WriteString(")")
	if _, err := t.tx.ExecContext(t.ctx, b.String(), args...); err != nil {
		return fmt.Errorf("cluster: insert into %s: %w", tab.Name, err)
	}
	return nil
}

func (t *sqlTx) Put(table string, rows ...Row) error {
	tab, err := tableOf(table)
	if err != nil {
		return err
	}
	// Group rows by their column set; a later row for the same key wins.
	type batch struct {
		cols []string
		rows []Row
		idx  map[string]int
	}
	batches := map[string]*batch{}
	var order []string
	for _, r := range rows {
		if err := checkCols(tab, r); err != nil {
			return err
		}
		if err := t.checkRow(tab, r); err != nil {
			return err
		}
		cols := make([]string, 0, len(r))
		for c := range r {
			cols = append(cols, c)
		}
		slices.Sort(cols)
		sig := strings.Join(cols, ",")
		b := batches[sig]
		if b == nil {
			b = &batch{cols: cols, idx: map[string]int{}}
			batches[sig] = b
			order = append(order, sig)
		}
		var kb strings.Builder
		for _, k := range tab.Keys {
			kb.WriteString(r[k])
			kb.WriteByte(0)
		}
		if i, ok := b.idx[kb.String()]; ok {
			b.rows[i] = r
			continue
		}
		b.idx[kb.String()] = len(b.rows)
		b.rows = append(b.rows, r)
	}
	for _, sig := range order {
		b := batches[sig]
		per := max(1, t.d.maxVars/len(b.cols))
		per = min(per, 1000)
		for start := 0; start < len(b.rows); start += per {
			if err := t.putBatch(tab, b.cols, b.rows[start:min(start+per, len(b.rows))]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *sqlTx) putBatch(tab *Table, cols []string, rows []Row) error {
	var b strings.Builder
	b.WriteString("INSERT INTO " + quote(tab.Name) + " (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(c))
	}
	b.WriteString(") VALUES ")
	args := make([]any, 0, len(cols)*len(rows))
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(")
		for j, c := range cols {
			if j > 0 {
				b.WriteString(", ")
			}
			args = append(args, nullable(r[c]))
			b.WriteString(t.d.ph(len(args)))
		}
		b.WriteString(")")
	}
	b.WriteString(" ON CONFLICT (")
	for i, k := range tab.Keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(k))
	}
	b.WriteString(")")
	var set []string
	for _, c := range cols {
		if !tab.IsKey(c) {
			set = append(set, quote(c)+" = excluded."+quote(c))
		}
	}
	if len(set) == 0 {
		b.WriteString(" DO NOTHING")
	} else {
		b.WriteString(" DO UPDATE SET " + strings.Join(set, ", "))
	}
	if _, err := t.tx.ExecContext(t.ctx, b.String(), args...); err != nil {
		return fmt.Errorf("cluster: write %s: %w", tab.Name, err)
	}
	return nil
}

// DeleteIn removes the rows of table whose column col is one of vals.
func (t *sqlTx) DeleteIn(table, col string, vals []string) (int, error) {
	tab, err := tableOf(table)
	if err != nil {
		return 0, err
	}
	if !tab.HasColumn(col) {
		return 0, fmt.Errorf("no column %q in table %q: %w", col, table, ErrUnknownColumn)
	}
	total := 0
	for len(vals) > 0 {
		n := min(len(vals), 500)
		var b strings.Builder
		args := make([]any, n)
		b.WriteString("DELETE FROM " + quote(tab.Name) + " WHERE " + quote(col) + " IN (")
		for i, v := range vals[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			args[i] = v
			b.WriteString(t.d.ph(i + 1))
		}
		b.WriteString(")")
		res, err := t.tx.ExecContext(t.ctx, b.String(), args...)
		if err != nil {
			return 0, fmt.Errorf("cluster: delete from %s: %w", tab.Name, err)
		}
		m, _ := res.RowsAffected()
		total += int(m)
		vals = vals[n:]
	}
	return total, nil
}

// putIfAbsent inserts the rows whose key does not exist yet.
func (t *sqlTx) putIfAbsent(table string, rows []Row) error {
	tab, err := tableOf(table)
	if err != nil {
		return err
	}
	for _, r := range rows {
		key := Row{}
		for _, k := range tab.Keys {
			key[k] = r[k]
		}
		have, err := t.Rows(table, key)
		if err != nil {
			return err
		}
		if len(have) == 0 {
			if err := t.insert(tab, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *sqlTx) Delete(table string, match Row) (int, error) {
	tab, err := tableOf(table)
	if err != nil {
		return 0, err
	}
	w, args, err := t.where(tab, match, nil)
	if err != nil {
		return 0, err
	}
	res, err := t.tx.ExecContext(t.ctx, "DELETE FROM "+quote(tab.Name)+w, args...)
	if err != nil {
		return 0, fmt.Errorf("cluster: delete from %s: %w", tab.Name, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
