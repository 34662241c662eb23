// Command provctl is provkit's admin CLI, with xCAT's verbs and output formats: nodeadd,
// noderm, nodels, nodech, chtab, tabdump, tabrestore, lsdef, mkdef, chdef, rmdef,
// makehosts, and more as the packages grow.
//
// Each verb is a subcommand (`provctl lsdef n1`), and a link named after a verb that points
// to provctl behaves like xCAT's command (`ln -s provctl lsdef; ./lsdef n1`).
//
// The store is chosen by --db or $PROVKIT_DB: a file path means SQLite, a postgres:// URL
// means PostgreSQL; the default is ./provkit.db.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/provkit/provkit/cluster"
	"github.com/spf13/cobra"
)

// app carries what every command needs: where the store is and the standard streams.
type app struct {
	dsn    string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	store  *cluster.DB
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one provctl invocation and returns its exit code.
func run(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	args := argv[1:]
	// argv[0] dispatch: a link named like a verb runs that verb.
	if base := filepath.Base(argv[0]); base != "provctl" {
		if c, _, err := root.Find([]string{base}); err == nil && c != root {
			args = append([]string{base}, args...)
		}
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if a.store != nil {
		a.store.Close()
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "provctl",
		Short:         "provkit's cluster admin CLI (xCAT-compatible verbs)",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVar(&a.dsn, "db", "", "store: a SQLite file path or a postgres:// URL (default $PROVKIT_DB, else ./provkit.db)")
	root.CompletionOptions.DisableDefaultCmd = true
	for _, c := range []*cobra.Command{
		a.nodeaddCmd(), a.nodermCmd(), a.nodelsCmd(), a.nodechCmd(),
		a.chtabCmd(), a.tabdumpCmd(), a.tabrestoreCmd(),
		a.lsdefCmd(), a.mkdefCmd(), a.chdefCmd(), a.rmdefCmd(),
		a.makehostsCmd(),
		a.nodesetCmd(), a.nodestatCmd(), a.updatenodestatCmd(),
		a.rpowerCmd(), a.rsetbootCmd(), a.makedhcpCmd(),
		a.genimageCmd(), a.packimageCmd(), a.imgcaptureCmd(), a.mkcdslCmd(),
		a.hasetupCmd(), a.hafailoverCmd(),
		a.makednsCmd(), a.mknbCmd(), a.nodediscoverstartCmd(), a.nodediscoverstopCmd(), a.nodediscoverstatusCmd(), a.nodediscoverlsCmd(), a.nodediscoverdefCmd(),
	} {
		root.AddCommand(c)
	}
	return root
}

// open returns the store, opening it on first use.
func (a *app) open(ctx context.Context) (*cluster.DB, error) {
	if a.store != nil {
		return a.store, nil
	}
	dsn := a.dsn
	if dsn == "" {
		dsn = os.Getenv("PROVKIT_DB")
	}
	if dsn == "" {
		dsn = cluster.DefaultDSN
	}
	s, err := cluster.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	a.store = s
	return s, nil
}

// view opens the store and reads a full view of it.
func (a *app) view(ctx context.Context) (*cluster.View, error) {
	s, err := a.open(ctx)
	if err != nil {
		return nil, err
	}
	return cluster.LoadView(ctx, s)
}

// rangeOptions reads xCAT's noderange environment (XCAT_NODE_PREFIX/SUFFIX).
func rangeOptions(generic bool) cluster.RangeOptions {
	return cluster.RangeOptions{
		Generic: generic,
		Prefix:  os.Getenv("XCAT_NODE_PREFIX"),
		Suffix:  os.Getenv("XCAT_NODE_SUFFIX"),
	}
}

// plainNames reports whether nr is a comma list of names with no noderange operators, so
// that it can be answered from a partial view when every name is a node.
func plainNames(nr string) ([]string, bool) {
	if nr == "" || strings.ContainsAny(nr, "[]()@/^+:=~!*?") || strings.HasPrefix(nr, "-") || strings.Contains(nr, ",-") {
		return nil, false
	}
	return strings.Split(nr, ","), true
}

// nodes expands a noderange (verify mode) and returns the names with a view that can
// resolve them. A plain list of existing node names is answered from a partial view, so
// single-node commands stay fast on large clusters.
func (a *app) nodes(ctx context.Context, nr string) ([]string, *cluster.View, error) {
	s, err := a.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	if names, ok := plainNames(nr); ok {
		v, err := cluster.LoadViewOf(ctx, s, names)
		if err != nil {
			return nil, nil, err
		}
		if !slices.ContainsFunc(names, func(n string) bool { return !v.IsNode(n) }) && v.Site("excludenodes") == "" {
			out := slices.Clone(names)
			slices.Sort(out)
			return slices.Compact(out), v, nil
		}
	}
	v, err := cluster.LoadView(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	if nr == "" {
		names = slices.Clone(v.Nodes())
	} else {
		names, err = cluster.ExpandNoderange(nr, v, rangeOptions(false))
		if err != nil {
			return nil, nil, err
		}
	}
	if ex := v.Site("excludenodes"); ex != "" {
		drop, err := cluster.ExpandNoderange(ex, v, rangeOptions(true))
		if err != nil {
			return nil, nil, fmt.Errorf("site.excludenodes: %w", err)
		}
		names = slices.DeleteFunc(names, func(n string) bool { _, found := slices.BinarySearch(drop, n); return found })
	}
	return names, v, nil
}

// newNames expands a noderange in non-verify mode (mkdef, nodeadd): the names need not exist.
func (a *app) newNames(ctx context.Context, nr string) ([]string, *cluster.View, error) {
	v, err := a.view(ctx)
	if err != nil {
		return nil, nil, err
	}
	names, err := cluster.ExpandNoderange(nr, v, rangeOptions(true))
	return names, v, err
}

// usageError makes cobra-style argument errors carry xCAT's usage line.
func usageError(c *cobra.Command, msg string) error {
	return fmt.Errorf("%s\nUsage: %s", msg, c.UseLine())
}
