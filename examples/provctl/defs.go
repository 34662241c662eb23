package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/provkit/provkit/cluster"
	"github.com/spf13/cobra"
)

func (a *app) lsdefCmd() *cobra.Command {
	var (
		types, objNames, only         string
		long, short, stanza, compress bool
		wheres                        []string
	)
	c := &cobra.Command{
		Use:   "lsdef [-t type[,type]] [-o names | noderange] [-l|-s|-z|-c] [-i attr,...] [-w attr==val ...]",
		Short: "List object definitions",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			typeList := []string{"node"}
			if types != "" {
				typeList = strings.Split(types, ",")
			}
			for _, t := range typeList {
				if _, err := cluster.LookupObjectType(t); err != nil {
					return err
				}
			}
			names := objNames
			if len(args) == 1 {
				if names != "" {
					return usageError(c, "give object names either with -o or as an argument, not both")
				}
				names = args[0]
			}
			var filters []*cluster.WhereMatcher
			for _, w := range wheres {
				f, err := cluster.ParseWhere(w)
				if err == nil {
					var m *cluster.WhereMatcher
					if m, err = f.Compile(); err == nil {
						filters = append(filters, m)
						continue
					}
				}
				return fmt.Errorf("-w %q: %w", w, err)
			}
			var attrs []string
			if only != "" {
				attrs = strings.Split(only, ",")
			}
			format := cluster.LsdefLong
			switch {
			case stanza:
				format = cluster.LsdefStanza
			case compress:
				format = cluster.LsdefCompressed
			case short:
				format = cluster.LsdefShort
			case !long && names == "" && len(attrs) == 0 && len(filters) == 0:
				// lsdef with nothing named lists the objects, one per line.
				format = cluster.LsdefShort
			}
			var objs []*cluster.Object
			for _, t := range typeList {
				o, err := a.objects(ctx, t, names, format == cluster.LsdefShort && len(filters) == 0, format == cluster.LsdefStanza)
				if err != nil {
					return err
				}
				objs = append(objs, o...)
			}
			objs = slices.DeleteFunc(objs, func(o *cluster.Object) bool {
				for _, f := range filters {
					if !f.MatchDefined(o.Attrs[f.Where().Attr]) {
						return true
					}
				}
				return false
			})
			if len(objs) == 0 && names == "" && len(filters) == 0 {
				return fmt.Errorf("Could not find any object definitions to display.")
			}
			return cluster.WriteLsdef(a.stdout, objs, format, attrs, len(typeList) > 1)
		},
	}
	f := c.Flags()
	f.StringVarP(&types, "type", "t", "", "object types: node, group, network, osimage, site, policy (comma list)")
	f.StringVarP(&objNames, "objects", "o", "", "object names (a noderange for nodes)")
	f.BoolVarP(&long, "long", "l", false, "long format: every attribute")
	f.BoolVarP(&short, "short", "s", false, "short format: names only")
	f.BoolVarP(&stanza, "stanza", "z", false, "stanza format (for mkdef -z)")
	f.BoolVarP(&compress, "compress", "c", false, "one line per attribute: name: attr=value")
	f.StringVarP(&only, "info", "i", "", "only these attributes (comma list)")
	f.StringArrayVarP(&wheres, "where", "w", nil, "keep objects where attr==val (also !=, =~, !~); repeat to AND")
	return c
}

// objects returns the objects of type typ named by names (a noderange for nodes and
// groups, a comma list otherwise; all when empty). namesOnly skips resolving attributes.
func (a *app) objects(ctx context.Context, typ, names string, namesOnly, stanza bool) ([]*cluster.Object, error) {
	var v *cluster.View
	var list []string
	var err error
	if typ == "node" {
		list, v, err = a.nodes(ctx, names)
		if err != nil {
			return nil, err
		}
	} else {
		if v, err = a.view(ctx); err != nil {
			return nil, err
		}
		if names == "" {
			if list, err = v.ObjectNames(typ); err != nil {
				return nil, err
			}
		} else {
			list = strings.Split(names, ",")
		}
	}
	out := make([]*cluster.Object, 0, len(list))
	for _, n := range list {
		if namesOnly {
			out = append(out, &cluster.Object{Type: typ, Name: n})
			continue
		}
		o, err := v.Object(typ, n, cluster.ObjectOptions{Stanza: stanza})
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// defFlags are the flags mkdef and chdef share.
type defFlags struct {
	typ, objNames, newName string
	force, add, remove     bool
	dynamic, stanza        bool
	wheres                 []string
}

func (d *defFlags) register(c *cobra.Command, chdef bool) {
	f := c.Flags()
	f.StringVarP(&d.typ, "type", "t", "node", "object type: node, group, network, osimage, site, policy")
	f.StringVarP(&d.objNames, "objects", "o", "", "object names (a noderange for nodes)")
	f.BoolVarP(&d.dynamic, "dynamic", "d", false, "a dynamic group (with -w)")
	f.StringArrayVarP(&d.wheres, "where", "w", nil, "dynamic group criteria attr==val (repeatable)")
	f.BoolVarP(&d.stanza, "stanza", "z", false, "read a stanza file from stdin")
	if chdef {
		f.BoolVarP(&d.add, "plus", "p", false, "append to comma lists")
		f.BoolVarP(&d.remove, "minus", "m", false, "remove from comma lists")
		f.StringVarP(&d.newName, "name", "n", "", "rename the object")
	} else {
		f.BoolVarP(&d.force, "force", "f", false, "replace an existing definition")
	}
}

// defs builds the Definitions of a mkdef/chdef invocation.
func (a *app) defs(ctx context.Context, d *defFlags, args []string, mode cluster.DefineMode) ([]cluster.Definition, error) {
	if d.stanza {
		objs, err := cluster.ReadStanza(a.stdin)
		if err != nil {
			return nil, err
		}
		var out []cluster.Definition
		for _, o := range objs {
			def := cluster.Definition{Type: o.Type, Names: []string{o.Name}, Mode: mode}
			for _, k := range o.SortedAttrs() {
				def.Attrs = append(def.Attrs, cluster.Assign{Attr: k, Value: o.Attrs[k]})
			}
			out = append(out, def)
		}
		return out, nil
	}
	names := d.objNames
	var assigns []cluster.Assign
	for _, x := range args {
		k, v, ok := strings.Cut(x, "=")
		if !ok {
			if names != "" {
				return nil, fmt.Errorf("%q is not attr=value, and the objects are already named", x)
			}
			names = x
			continue
		}
		assigns = append(assigns, cluster.Assign{Attr: k, Value: v})
	}
	if names == "" {
		if d.typ != "site" {
			return nil, errors.New("no object names were given: use -o names or a noderange")
		}
		names = cluster.SiteObjectName
	}
	var list []string
	var err error
	switch d.typ {
	case "node":
		if mode == cluster.ModeCreate || mode == cluster.ModeReplace || mode == cluster.ModeChange {
			list, _, err = a.newNames(ctx, names)
		} else {
			list, _, err = a.nodes(ctx, names)
		}
	case "group":
		list, _, err = a.newNames(ctx, names)
	default:
		list = strings.Split(names, ",")
	}
	if err != nil {
		return nil, err
	}
	return []cluster.Definition{{Type: d.typ, Names: list, Attrs: assigns, Mode: mode, NewName: d.newName, Dynamic: d.dynamic, Where: d.wheres}}, nil
}

func (a *app) runDefine(ctx context.Context, defs []cluster.Definition, chdef bool) error {
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	total := 0
	for _, d := range defs {
		res, err := cluster.Define(ctx, s, d)
		if err != nil {
			return err
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(a.stderr, "Warning: %s\n", w)
		}
		if chdef && len(res.Created) > 0 {
			fmt.Fprintf(a.stdout, "New object definitions '%s' have been created.\n", strings.Join(res.Created, ","))
		}
		total += len(res.Created) + len(res.Modified)
	}
	fmt.Fprintf(a.stdout, "%d object definitions have been created or modified.\n", total)
	return nil
}

func (a *app) mkdefCmd() *cobra.Command {
	d := &defFlags{}
	c := &cobra.Command{
		Use:   "mkdef [-t type] [-o names | noderange] [-f] attr=value ... | mkdef -z < stanzafile",
		Short: "Create object definitions",
		RunE: func(c *cobra.Command, args []string) error {
			mode := cluster.ModeCreate
			if d.force {
				mode = cluster.ModeReplace
			}
			defs, err := a.defs(c.Context(), d, args, mode)
			if err != nil {
				return err
			}
			return a.runDefine(c.Context(), defs, false)
		},
	}
	d.register(c, false)
	return c
}

func (a *app) chdefCmd() *cobra.Command {
	d := &defFlags{}
	c := &cobra.Command{
		Use:   "chdef [-t type] [-o names | noderange] [-p|-m] [-n newname] attr=value ... | chdef -z < stanzafile",
		Short: "Change object definitions (creating missing ones)",
		RunE: func(c *cobra.Command, args []string) error {
			mode := cluster.ModeChange
			switch {
			case d.add && d.remove:
				return usageError(c, "-p and -m cannot be used together")
			case d.add:
				mode = cluster.ModeAppend
			case d.remove:
				mode = cluster.ModeRemove
			}
			defs, err := a.defs(c.Context(), d, args, mode)
			if err != nil {
				return err
			}
			return a.runDefine(c.Context(), defs, true)
		},
	}
	d.register(c, true)
	return c
}

func (a *app) rmdefCmd() *cobra.Command {
	var typ, objNames string
	c := &cobra.Command{
		Use:   "rmdef [-t type] [-o names | noderange]",
		Short: "Remove object definitions",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			names := objNames
			if len(args) == 1 {
				names = args[0]
			}
			if names == "" {
				return usageError(c, "no object names were given")
			}
			var list []string
			var err error
			if typ == "node" {
				list, _, err = a.nodes(ctx, names)
				if err != nil {
					return err
				}
			} else {
				list = strings.Split(names, ",")
			}
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			if err := cluster.RemoveObjects(ctx, s, typ, list); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d object definitions have been removed.\n", len(list))
			return nil
		},
	}
	c.Flags().StringVarP(&typ, "type", "t", "node", "object type")
	c.Flags().StringVarP(&objNames, "objects", "o", "", "object names")
	return c
}
