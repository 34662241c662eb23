package cdsl

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// A Problem is one broken or inconsistent part of the infrastructure that Check found.
type Problem struct {
	// Path is the CDSL (or the stray link) concerned, relative to the root.
	Path string
	// Node is the node concerned, "" when the problem is not a node's.
	Node string
	// What describes the problem.
	What string
}

func (p Problem) String() string {
	if p.Node != "" {
		return fmt.Sprintf("%s (node %s): %s", p.Path, p.Node, p.What)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.What)
}

// Check verifies the infrastructure against the inventory and returns what is broken or
// inconsistent: missing infrastructure directories; CDSL links that are missing, not links
// or point elsewhere; node or shared copies that are missing; and symbolic links into Link
// or the shared tree that the inventory does not know. It changes nothing.
func (r *Repo) Check() ([]Problem, error) {
	unlock, err := r.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := r.inv.Layout
	var out []Problem
	add := func(p, node, format string, args ...any) {
		out = append(out, Problem{Path: p, Node: node, What: fmt.Sprintf(format, args...)})
	}
	for _, d := range []string{l.Tree, join(l.Tree, l.Default), l.SharedTree, l.Link} {
		if fi, err := r.root.Lstat(d); err != nil {
			add(d, "", "infrastructure directory missing: %v", err)
		} else if !fi.IsDir() {
			add(d, "", "infrastructure path is a %s, not a directory", kind(fi))
		}
	}
	nodes, err := r.nodes()
	if err != nil {
		return nil, err
	}
	trees := append([]string{l.Default}, nodes...)
	// checkLink reports whether p is a symbolic link whose target is want.
	checkLink := func(p, node, want string) {
		fi, err := r.root.Lstat(p)
		if err != nil {
			add(p, node, "missing (want a symbolic link to %s)", want)
			return
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			add(p, node, "is a %s, want a symbolic link to %s", kind(fi), want)
			return
		}
		if got, err := r.root.Readlink(p); err != nil || got != want {
			add(p, node, "links to %q, want %q", got, want)
		}
	}
	for _, e := range r.inv.Entries {
		switch e.Type {
		case HostDependent:
			checkLink(e.Path, "", linkTarget(e.Path, join(l.Link, e.Path)))
			for _, t := range trees {
				if _, err := r.root.Lstat(join(l.Tree, t, e.Path)); err != nil {
					add(e.Path, t, "no copy in %s", join(l.Tree, t))
				}
			}
		case Shared:
			if _, err := r.root.Lstat(join(l.SharedTree, e.Path)); err != nil {
				add(e.Path, "", "no shared copy in %s", l.SharedTree)
			}
			for _, t := range trees {
				np := join(l.Tree, t, e.Path)
				checkLink(np, t, linkTarget(np, join(l.SharedTree, e.Path)))
			}
		}
	}
	// Stray links: symbolic links into Link anywhere outside the trees, and links into the
	// shared tree inside the node trees, that no CDSL accounts for.
	err = fs.WalkDir(r.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			add(p, "", "cannot read: %v", err)
			return nil
		}
		if p == l.SharedTree || p == l.Link {
			return fs.SkipDir
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := r.root.Readlink(p)
		if err != nil {
			return nil
		}
		to := linkDest(p, target)
		switch {
		case under(to, l.Link):
			if under(p, l.Tree) {
				add(p, "", "link into %s inside a node tree", l.Link)
			} else if e, ok := r.inv.find(p); !ok || e.Type != HostDependent {
				add(p, "", "symbolic link into %s without a host-dependent CDSL in the inventory", l.Link)
			}
		case under(to, l.SharedTree) && under(p, l.Tree):
			rel := strings.SplitN(strings.TrimPrefix(p, l.Tree+"/"), "/", 2)
			if len(rel) < 2 {
				add(p, "", "link into %s in place of a node tree", l.SharedTree)
			} else if e, ok := r.inv.find(rel[1]); !ok || e.Type != Shared {
				add(p, rel[0], "symbolic link into %s without a shared CDSL in the inventory", l.SharedTree)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cdsl: check: %w", err)
	}
	return out, nil
}

// linkDest is where a symbolic link at p with target points, relative to the root (absolute
// targets are taken relative to the root, as on a booted node).
func linkDest(p, target string) string {
	if strings.HasPrefix(target, "/") {
		return strings.TrimPrefix(path.Clean(target), "/")
	}
	d := path.Clean(path.Join(dirOf(p), target))
	if d == "." || strings.HasPrefix(d, "../") || d == ".." {
		return ""
	}
	return d
}
