package main

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/examples/internal/glue"
	"github.com/spf13/cobra"
)

func (a *app) nodesetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodeset noderange netboot|statelite|install|sysclone|boot|shell|offline|stat|osimage=<image>",
		Short: "Set the boot state of nodes (their boot configs follow at once)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			names, v, err := a.nodes(ctx, args[0])
			if err != nil {
				return err
			}
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			if args[1] == "stat" {
				for _, n := range names {
					fmt.Fprintf(out, "%s: %s\n", n, v.NodeAttr(n, "currstate"))
				}
				return nil
			}
			req, err := cluster.ParseNodeset(args[1])
			if err != nil {
				return err
			}
			states, err := cluster.Nodeset(ctx, a.store, names, req)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(out, "%s: %s\n", n, states[n])
			}
			return nil
		},
	}
}

func (a *app) nodestatCmd() *cobra.Command {
	var power bool
	c := &cobra.Command{
		Use:   "nodestat noderange [-p]",
		Short: "Show each node's last reported state (-p: with its power state)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			names, v, err := a.nodes(ctx, args[0])
			if err != nil {
				return err
			}
			var results []bmc.Result
			if power {
				targets, err := glue.BMCTargets(v, names)
				if err != nil {
					return err
				}
				cl := &bmc.Client{}
				defer cl.Close(context.WithoutCancel(ctx))
				results = cl.Power(ctx, targets, bmc.Stat)
			}
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			for i, n := range names {
				st := v.NodeAttr(n, "status")
				if st == "" {
					st = "unknown"
				}
				if power {
					st = bmc.StatWithPower(st, results[i])
				}
				fmt.Fprintf(out, "%s: %s\n", n, st)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&power, "powerstat", "p", false, "add the power state read from the BMC")
	return c
}

func (a *app) updatenodestatCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "updatenodestat noderange status",
		Short: "Record a status for nodes (as a node's boot reports it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			names, _, err := a.nodes(c.Context(), args[0])
			if err != nil {
				return err
			}
			now := time.Now()
			for _, n := range names {
				if err := cluster.SetStatus(c.Context(), a.store, n, args[1], now); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
