package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/provkit/provkit/cluster"
	"github.com/spf13/cobra"
)

func (a *app) chtabCmd() *cobra.Command {
	var del bool
	c := &cobra.Command{
		Use:   "chtab [-d] [keycol=keyval[,keycol=keyval...]] table.col=value|table.col+=value ... | chtab -d keycol=keyval table [table ...]",
		Short: "Add, change or delete table rows by key",
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			if del {
				if len(args) < 2 {
					return usageError(c, "chtab -d needs a key selector and at least one table")
				}
				key, err := cluster.ParseKeySelector(args[0])
				if err != nil {
					return err
				}
				s, err := a.open(ctx)
				if err != nil {
					return err
				}
				_, err = cluster.ChtabDelete(ctx, s, key, args[1:])
				return err
			}
			key, sets, err := cluster.ParseChtab(args)
			if err != nil {
				return err
			}
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			return cluster.Chtab(ctx, s, key, sets)
		},
	}
	c.Flags().BoolVarP(&del, "delete", "d", false, "delete the rows that match the key")
	return c
}

func (a *app) tabdumpCmd() *cobra.Command {
	var wheres []string
	var describe bool
	var file string
	c := &cobra.Command{
		Use:   "tabdump [-d] [table] [-w attr==val ...] [-f file]",
		Short: "Print a table as CSV (no table: list the tables)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			if len(args) == 0 {
				for _, t := range cluster.TableNames() {
					if describe {
						tab, _ := cluster.LookupTable(t)
						fmt.Fprintf(out, "%s:\t%s\n", t, tab.Descr)
					} else {
						fmt.Fprintln(out, t)
					}
				}
				return nil
			}
			if describe {
				tab, ok := cluster.LookupTable(args[0])
				if !ok {
					return fmt.Errorf("table %q: %w", args[0], cluster.ErrUnknownTable)
				}
				for _, col := range tab.Columns {
					sep := "\t"
					if len(col) < 7 {
						sep = "\t\t"
					}
					fmt.Fprintf(out, "%s:%s%s\n", col, sep, columnDescr(tab, col))
				}
				return nil
			}
			var filters []cluster.Where
			for _, w := range wheres {
				f, err := cluster.ParseWhere(w)
				if err != nil {
					return fmt.Errorf("-w %q: %w", w, err)
				}
				filters = append(filters, f)
			}
			s, err := a.open(c.Context())
			if err != nil {
				return err
			}
			if file != "" {
				f, err := os.Create(file)
				if err != nil {
					return err
				}
				if err := cluster.Tabdump(c.Context(), s, args[0], filters, f); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			}
			return cluster.Tabdump(c.Context(), s, args[0], filters, out)
		},
	}
	c.Flags().StringArrayVarP(&wheres, "where", "w", nil, "keep rows where attr==val (also !=, =~, !~, <, <=, >, >=); repeat to AND")
	c.Flags().BoolVarP(&describe, "describe", "d", false, "describe the tables (or the columns of one table)")
	c.Flags().StringVarP(&file, "file", "f", "", "write the CSV to this file")
	return c
}

// columnDescr describes a column for tabdump -d <table>.
func columnDescr(t *cluster.Table, col string) string {
	switch {
	case col == "comments":
		return "Any user-written notes."
	case col == "disable":
		return "Set to 'yes' or '1' to comment out this row."
	case t.IsKey(col):
		return "Key column of the " + t.Name + " table."
	}
	return ""
}

func (a *app) tabrestoreCmd() *cobra.Command {
	var add bool
	c := &cobra.Command{
		Use:   "tabrestore [-a] file.csv",
		Short: "Replace a table (named by the file) with the rows of a tabdump file",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			s, err := a.open(c.Context())
			if err != nil {
				return err
			}
			_, err = cluster.Tabrestore(c.Context(), s, cluster.TableFromFile(args[0]), bufio.NewReaderSize(f, 1<<16), add)
			return err
		},
	}
	c.Flags().BoolVarP(&add, "addrows", "a", false, "add and update rows instead of replacing the table")
	return c
}

// splitAssigns separates table.col=value arguments (and filters such as table.col==val)
// from the rest.
func splitAssigns(args []string) (sets []cluster.ColumnAssign, filters []cluster.Where, err error) {
	for _, a := range args {
		if strings.Contains(a, "==") || strings.Contains(a, "!=") || strings.Contains(a, "=~") || strings.Contains(a, "!~") {
			w, err := cluster.ParseWhere(a)
			if err != nil {
				return nil, nil, fmt.Errorf("%q: %w", a, err)
			}
			filters = append(filters, w)
			continue
		}
		ca, err := cluster.ParseColumnAssign(a)
		if err != nil {
			return nil, nil, err
		}
		sets = append(sets, ca)
	}
	return sets, filters, nil
}

func (a *app) nodeaddCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodeadd noderange groups=g1,g2 [table.col=value ...]",
		Short: "Add nodes to the cluster",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			sets, filters, err := splitAssigns(args[1:])
			if err != nil {
				return err
			}
			if len(filters) > 0 {
				return usageError(c, "nodeadd takes table.col=value assignments only")
			}
			names, v, err := a.newNames(c.Context(), args[0])
			if err != nil {
				return err
			}
			if err := cluster.Nodeadd(c.Context(), a.store, names, sets); err != nil {
				return err
			}
			for _, w := range addCDSLTrees(v, names) { // images with CDSLs: trees for the new nodes
				a.warnf("nodeadd: %s", w)
			}
			return nil
		},
	}
}

func (a *app) nodermCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "noderm noderange",
		Short: "Remove nodes from the cluster",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			names, _, err := a.nodes(c.Context(), args[0])
			if err != nil {
				return err
			}
			return cluster.Noderm(c.Context(), a.store, names)
		},
	}
}

// filterNodes keeps the nodes whose resolved attributes match every filter.
func filterNodes(v *cluster.View, names []string, filters []cluster.Where) ([]string, error) {
	if len(filters) == 0 {
		return names, nil
	}
	var out []string
	for _, n := range names {
		keep := true
		for _, f := range filters {
			ok, err := f.Match(v.Lookup(n, f.Attr))
			if err != nil {
				return nil, err
			}
			if !ok {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, n)
		}
	}
	return out, nil
}

func (a *app) nodechCmd() *cobra.Command {
	var del bool
	c := &cobra.Command{
		Use:   "nodech noderange table.col=value|table.col,=value|table.col^=value ... | nodech -d noderange table ...",
		Short: "Change nodes' table values",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			names, v, err := a.nodes(c.Context(), args[0])
			if err != nil {
				return err
			}
			if del {
				return cluster.NodechDelete(c.Context(), a.store, names, args[1:])
			}
			sets, filters, err := splitAssigns(args[1:])
			if err != nil {
				return err
			}
			if names, err = filterNodes(v, names, filters); err != nil {
				return err
			}
			return cluster.Nodech(c.Context(), a.store, names, sets)
		},
	}
	c.Flags().BoolVarP(&del, "delete", "d", false, "delete the nodes' rows from the named tables")
	return c
}

func (a *app) nodelsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodels [noderange] [table.col|attribute ...]",
		Short: "List nodes, or their attributes",
		RunE: func(c *cobra.Command, args []string) error {
			nr := ""
			if len(args) > 0 {
				nr, args = args[0], args[1:]
			}
			names, v, err := a.nodes(c.Context(), nr)
			if err != nil {
				return err
			}
			var filters []cluster.Where
			var attrs []string
			for _, x := range args {
				if w, err := cluster.ParseWhere(x); err == nil && strings.ContainsAny(w.Op, "=~!<>") && w.Op != "=" {
					filters = append(filters, w)
					continue
				}
				if x == "groups" {
					x = "nodelist.groups"
				}
				attrs = append(attrs, x)
			}
			if names, err = filterNodes(v, names, filters); err != nil {
				return err
			}
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			for _, n := range names {
				switch len(attrs) {
				case 0:
					fmt.Fprintln(out, n)
				case 1:
					fmt.Fprintf(out, "%s: %s\n", n, v.Lookup(n, attrs[0]))
				default:
					for _, at := range attrs {
						fmt.Fprintf(out, "%s: %s: %s\n", n, at, v.Lookup(n, at))
					}
				}
			}
			return nil
		},
	}
}
