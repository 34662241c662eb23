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
	return r.Snapshot().Resolve(tree, c), nil
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

// A Snapshot is an immutable copy of the inventory for resolving many paths fast and
// without locks or file system access, as a server exporting the root does per request.
type Snapshot struct {
	layout Layout
	types  map[string]Type
	inv    *inventory
}

// Snapshot returns the inventory as it is now.
func (r *Repo) Snapshot() *Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &Snapshot{layout: r.inv.Layout, types: map[string]Type{}, inv: r.inv.clone()}
	for _, e := range r.inv.Entries {
		s.types[e.Path] = e.Type
	}
	return s
}

// Layout is the snapshot's layout.
func (s *Snapshot) Layout() Layout { return s.layout }

// Entries are the CDSLs, sorted by path.
func (s *Snapshot) Entries() []Entry { return s.inv.clone().Entries }

// Type returns the type of the CDSL at the clean path p, if p is one.
func (s *Snapshot) Type(p string) (Type, bool) {
	t, ok := s.types[p]
	return t, ok
}

// Resolve is Repo.Resolve for a clean path p ("" for the root; see CleanPath) and the
// node's tree as NodeTree returned it.
func (s *Snapshot) Resolve(tree, p string) string {
	l := s.layout
	if under(p, l.Link) {
		return join(tree, p[min(len(p), len(l.Link)+1):])
	}
	// The nearest CDSL at or above p decides; prefixes are looked up without allocating.
	for end := len(p); end > 0; {
		if t, ok := s.types[p[:end]]; ok {
			if t == Shared {
				return join(l.SharedTree, p)
			}
			return join(tree, p)
		}
		i := end - 1
		for i > 0 && p[i] != '/' {
			i--
		}
		end = i
	}
	return p
}
