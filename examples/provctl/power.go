package main

import (
	"context"
	"fmt"

	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/examples/internal/glue"
	"github.com/spf13/cobra"
)

func (a *app) rpowerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rpower noderange on|off|softoff|reset|boot|cycle|stat|state",
		Short: "Control nodes' power through their BMCs",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			targets, err := a.targets(ctx, args[0])
			if err != nil {
				return err
			}
			cl := &bmc.Client{}
			defer cl.Close(context.WithoutCancel(ctx))
			if code := cl.Rpower(ctx, targets, args[1], a.stdout, a.stderr); code != 0 {
				return &exitError{code: code, err: fmt.Errorf("rpower %s failed on some nodes", args[1])}
			}
			return nil
		},
	}
}

func (a *app) rsetbootCmd() *cobra.Command {
	var o bmc.BootOptions
	c := &cobra.Command{
		Use:   "rsetboot noderange net|hd|cd|setup|floppy|default|stat [-p] [-u]",
		Short: "Set nodes' next boot device through their BMCs",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			targets, err := a.targets(ctx, args[0])
			if err != nil {
				return err
			}
			cl := &bmc.Client{}
			defer cl.Close(context.WithoutCancel(ctx))
			if code := cl.Rsetboot(ctx, targets, args[1], o, a.stdout, a.stderr); code != 0 {
				return &exitError{code: code, err: fmt.Errorf("rsetboot %s failed on some nodes", args[1])}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&o.Persistent, "persistent", "p", false, "every boot, not only the next one")
	c.Flags().BoolVarP(&o.UEFI, "uefi", "u", false, "boot in UEFI mode")
	return c
}

func (a *app) targets(ctx context.Context, nr string) ([]bmc.Target, error) {
	names, v, err := a.nodes(ctx, nr)
	if err != nil {
		return nil, err
	}
	return glue.BMCTargets(v, names)
}
