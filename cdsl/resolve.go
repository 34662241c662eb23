package cdsl

import (
	"fmt"
)

// NodeTree returns the tree (relative to the root) that node sees at Link: Tree/<node>
// when the node has one, the default tree otherwise (as Open Sharedroot's initrd does).
func (r *Repo) NodeTree(node string) (string, error) {
	if err := ValidNode(node); err != nil {
		return "", fmt.Errorf("cdsl: %w", err)
	}
	r.mu.Lock()
	l := r.inv.Layout
	r.mu.Unlock()
	t := join(l.Tree, node)
	if fi, err := r.root.Lstat(t); err == nil && fi.IsDir() {
		return t, nil
	}
	return join(l.Tree, l.Default), nil
}

// Resolve returns where the content of p, as node sees it, lives in the root: for a path in
// or below a host-dependent CDSL, the node's copy (NodeTree(node)/p); below a shared one,
// SharedTree/p; below Link, the node's tree; otherwise p itself. Only CDSLs are resolved,
// not other symbolic links. p is relative to the root (a leading slash is allowed; "/" is
// the root and resolves to "").
func (r *Repo) Resolve(node, p string) (string, error) {
	var c string
	if p != "/" && p != "" {
		var err error
		if c, err = CleanPath(p); err != nil {
			return "", fmt.Errorf("cdsl: resolve: %w", err)
		}
	}
	tree, err := r.NodeTree(node)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return resolve(r.inv, tree, c), nil
}

func resolve(inv *inventory, tree, c string) string {
	l := inv.Layout
	if under(c, l.Link) {
		return join(tree, c[min(len(c), len(l.Link)+1):])
	}
	e, ok := inv.governing(c)
	if !ok {
		return c
	}
	if e.Type == Shared {
		return join(l.SharedTree, c)
	}
	return join(tree, c)
}

// A Mount is one bind mount of a node's boot plan, both paths absolute inside the node's
// root: mount --bind root+Source root+Target.
type Mount struct {
	Source string
	Target string
}

// Mounts is the bind-mount plan node applies at boot, in order, before it switches to the
// root: its tree on Link. The CDSL symbolic links do the rest.
func (r *Repo) Mounts(node string) ([]Mount, error) {
	tree, err := r.NodeTree(node)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return []Mount{{Source: "/" + tree, Target: "/" + r.inv.Layout.Link}}, nil
}
