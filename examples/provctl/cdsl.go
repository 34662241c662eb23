package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/provkit/provkit/cdsl"
	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/examples/internal/glue"
	"github.com/spf13/cobra"
)

// mkcdsl manages the context-dependent symbolic links of an osimage's root
// (<rootimgdir>/rootimg) with package cdsl, as Open Sharedroot's com-mkcdsl does on a
// shared root: each node of the cluster has a tree (cluster/cdsl/<node>) holding its own
// copy of every host-dependent path. provd's NFS server resolves them per node, so a
// statelite node sees its own /etc/hostname without bind mounts.
func (a *app) mkcdslCmd() *cobra.Command {
	var hostdep, shared, list, check, del bool
	var nodes, from string
	c := &cobra.Command{
		Use:   "mkcdsl osimage -a|-s|-d path | -l | -c [-n noderange] [--from node]",
		Short: "Make paths of an osimage's root host-dependent (-a) or shared again (-s); list (-l), check (-c) or delete (-d) them",
		Long: `mkcdsl manages the host-dependent paths (CDSLs) of an osimage's root, <rootimgdir>/rootimg.

  -a path   make path host-dependent: every node gets its own copy (cluster/cdsl/<node>/path),
            and path becomes a symbolic link through cdsl.local
  -s path   make path, below a host-dependent directory, shared by all nodes again
  -d path   undo the CDSL at path: the default copy (or --from node's) becomes the path again
  -l        list the CDSLs
  -c        check the infrastructure and find trees of nodes no longer in the cluster
            (noderm keeps them); exits 1 when it finds problems

-a and -s first give a tree to every node of the cluster that has none (or to the nodes of
-n noderange), copied from the default tree; nodeadd does the same for new nodes. Edit a
node's copy in <rootimgdir>/rootimg/cluster/cdsl/<node>/.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			n := 0
			for _, b := range []bool{hostdep, shared, list, check, del} {
				if b {
					n++
				}
			}
			if n != 1 {
				return usageError(c, "give exactly one of -a, -s, -l, -c and -d")
			}
			needPath := hostdep || shared || del
			if needPath != (len(args) == 2) {
				if needPath {
					return usageError(c, "-a, -s and -d need a path")
				}
				return usageError(c, "-l and -c take no path")
			}
			if from != "" && !del {
				return usageError(c, "--from goes with -d")
			}
			if nodes != "" && !hostdep && !shared {
				return usageError(c, "-n goes with -a or -s")
			}
			ctx := c.Context()
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			v, err := cluster.LoadView(ctx, s)
			if err != nil {
				return err
			}
			img := args[0]
			def, err := osimageDef(v, img)
			if err != nil {
				return err
			}
			root := filepath.Join(def["rootimgdir"], "rootimg")
			if st, err := os.Stat(root); err != nil || !st.IsDir() {
				return fmt.Errorf("osimage %s: no root filesystem at %s (run genimage %s)", img, root, img)
			}
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			switch {
			case hostdep, shared:
				ids := v.Nodes()
				if nodes != "" {
					if ids, err = cluster.ExpandNoderange(nodes, v, rangeOptions(false)); err != nil {
						return err
					}
				}
				for _, id := range ids {
					if err := cdsl.ValidNode(id); err != nil {
						return fmt.Errorf("node %s cannot have a CDSL tree: %w", id, err)
					}
				}
				if hostdep {
					if err := checkImagePath(root, args[1]); err != nil {
						return fmt.Errorf("osimage %s: %w", img, err)
					}
				}
				fresh := missingInfra(root)
				repo, err := cdsl.Create(root, ids...)
				if err != nil {
					removeInfra(root, fresh)
					return err
				}
				defer repo.Close()
				if hostdep {
					err = repo.MakeHostDependent(args[1])
				} else {
					err = repo.MakeShared(args[1])
				}
				if err != nil {
					// Leave the image as it was: without the infrastructure this call made.
					removeInfra(root, fresh)
					return err
				}
				trees, err := repo.Nodes()
				if err != nil {
					return err
				}
				kind := map[bool]string{true: "host-dependent", false: "shared"}[hostdep]
				fmt.Fprintf(out, "mkcdsl: %s: %s is %s (%d node trees in %s)\n", img, cleanAbs(args[1]), kind, len(trees), filepath.Join(root, repo.Layout().Tree))
				return nil
			}
			repo, err := cdsl.Open(root)
			if errors.Is(err, cdsl.ErrNoInventory) {
				if list || check {
					fmt.Fprintf(out, "mkcdsl: %s has no CDSLs\n", img)
					return nil
				}
				return fmt.Errorf("osimage %s has no CDSLs: %w", img, cdsl.ErrNotCDSL)
			}
			if err != nil {
				return err
			}
			defer repo.Close()
			switch {
			case list:
				for _, e := range repo.List() {
					fmt.Fprintf(out, "/%s: %s\n", e.Path, e.Type)
				}
			case check:
				problems, err := repo.Check()
				if err != nil {
					return err
				}
				for _, p := range problems {
					fmt.Fprintf(out, "/%s\n", p)
				}
				// Trees of nodes the tables no longer have (noderm keeps them: they may
				// hold the only copy of a node's files).
				trees, err := repo.Nodes()
				if err != nil {
					return err
				}
				n := len(problems)
				for _, id := range trees {
					if !v.IsNode(id) {
						fmt.Fprintf(out, "/%s: node %s is not in the cluster (remove the tree by hand once its files are not needed)\n",
							path.Join(repo.Layout().Tree, id), id)
						n++
					}
				}
				if n > 0 {
					return &exitError{code: 1, err: fmt.Errorf("osimage %s: %d CDSL problems", img, n)}
				}
				fmt.Fprintf(out, "mkcdsl: %s: no problems\n", img)
			case del:
				if err := repo.Remove(args[1], from); err != nil {
					return err
				}
				fmt.Fprintf(out, "mkcdsl: %s: %s is no longer a CDSL\n", img, cleanAbs(args[1]))
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVarP(&hostdep, "hostdependent", "a", false, "make path host-dependent")
	f.BoolVarP(&shared, "shared", "s", false, "make path shared again below a host-dependent directory")
	f.BoolVarP(&list, "list", "l", false, "list the CDSLs")
	f.BoolVarP(&check, "check", "c", false, "check the infrastructure (exit 1 on problems)")
	f.BoolVarP(&del, "delete", "d", false, "undo the CDSL at path")
	f.StringVarP(&nodes, "nodes", "n", "", "with -a or -s: the nodes that get a tree (default: every node)")
	f.StringVar(&from, "from", "", "with -d: keep this node's copy instead of the default one")
	return c
}

// checkImagePath checks that p names something in the image at root, for a clear
// message before anything changes.
func checkImagePath(root, p string) error {
	c, err := cdsl.CleanPath(p)
	if err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Lstat(c); err != nil {
		return fmt.Errorf("/%s: %w", c, err)
	}
	return nil
}

// missingInfra lists the parts of the CDSL infrastructure (default layout) that the
// image at root lacks, outermost first.
func missingInfra(root string) []string {
	l := cdsl.DefaultLayout
	var out []string
	for _, p := range []string{cdsl.DefaultInventory, filepath.Dir(l.Tree), l.Tree, l.SharedTree, l.Link} {
		if _, err := os.Lstat(filepath.Join(root, p)); errors.Is(err, os.ErrNotExist) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// removeInfra removes the parts of the infrastructure listed by missingInfra before a
// failed first use.
func removeInfra(root string, created []string) {
	for _, p := range created {
		_ = os.RemoveAll(filepath.Join(root, p))
	}
}

// cleanAbs shows a path of the image as absolute.
func cleanAbs(p string) string {
	if c, err := cdsl.CleanPath(p); err == nil {
		return "/" + c
	}
	return p
}

// addCDSLTrees gives new nodes a tree in every osimage whose root has CDSLs (nodeadd's
// hook), and returns a warning per image where that failed.
func addCDSLTrees(v *cluster.View, names []string) []string {
	var warnings []string
	imgs, _ := v.ObjectNames("osimage")
	ids := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return cdsl.ValidNode(n) != nil })
	for _, img := range imgs {
		o, err := v.Object("osimage", img, cluster.ObjectOptions{})
		if err != nil {
			continue
		}
		root, err := glue.ExportPath(img, o.Attrs["rootimgdir"])
		if err != nil {
			continue
		}
		repo, err := cdsl.Open(root)
		if err != nil {
			if !errors.Is(err, cdsl.ErrNoInventory) && !errors.Is(err, os.ErrNotExist) {
				warnings = append(warnings, fmt.Sprintf("osimage %s: %v", img, err))
			}
			continue
		}
		if err := repo.AddNodes(ids...); err != nil {
			warnings = append(warnings, fmt.Sprintf("osimage %s: %v (run mkcdsl %s -a <path> again)", img, err, img))
		}
		repo.Close()
	}
	return warnings
}

// warnf prints an xCAT-style warning on stderr.
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintf(a.stderr, "Warning: %s\n", strings.TrimSpace(fmt.Sprintf(format, args...)))
}
