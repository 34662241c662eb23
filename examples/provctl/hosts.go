package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/provkit/provkit/cluster"
	"github.com/spf13/cobra"
)

func (a *app) makehostsCmd() *cobra.Command {
	var (
		newFile, del, long, others, alias bool
		file                              string
	)
	c := &cobra.Command{
		Use:   "makehosts [noderange] [-n] [-d] [-l] [-o] [-a] [--file /etc/hosts]",
		Short: "Write the nodes' lines into /etc/hosts",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			if del && len(args) == 0 {
				return nil // xCAT: -d without a noderange does nothing
			}
			nr := ""
			if len(args) == 1 {
				nr = args[0]
			}
			names, v, err := a.nodes(ctx, nr)
			if err != nil {
				return err
			}
			lines, warnings := v.HostLines(names, cluster.HostsOptions{LongFirst: long, OthersFirst: others, Alias: alias})
			if !del {
				for _, w := range warnings {
					fmt.Fprintf(a.stderr, "Warning: %s\n", w)
				}
			}
			old, err := os.ReadFile(file)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			var out []byte
			switch {
			case newFile:
				out = cluster.NewHostsFile(lines)
			default:
				out = cluster.UpdateHostsFile(old, lines, del)
			}
			if old != nil {
				if err := os.WriteFile(file+".xcatbak", old, 0o644); err != nil {
					return fmt.Errorf("backup of %s: %w", file, err)
				}
			}
			// Write a temporary file and rename it, so a crash never leaves a torn file.
			tmp := file + ".provkit.tmp"
			if err := os.WriteFile(tmp, out, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, file)
		},
	}
	f := c.Flags()
	f.BoolVarP(&newFile, "new", "n", false, "start a new file with only localhost and the nodes")
	f.BoolVarP(&del, "delete", "d", false, "remove the nodes' lines")
	f.BoolVarP(&long, "longname", "l", false, "long name first")
	f.BoolVarP(&others, "othernames", "o", false, "other names first")
	f.BoolVarP(&alias, "adddomaintohostnames", "a", false, "add the domain to host names without one")
	f.StringVar(&file, "file", "/etc/hosts", "the hosts file to write")
	return c
}
