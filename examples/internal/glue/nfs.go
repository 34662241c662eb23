package glue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/provkit/provkit/cdsl"
	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/nfsroot"
)

// Statelite images over NFS: which osimages provd exports with package nfsroot, with
// which writable paths, where the nodes' state lives, and which node a client is.
//
// The model, following xCAT's statelite where it fits:
//
//   - An osimage is exported when its provmethod is statelite, or when a node's
//     chain.currstate is "statelite ..." with that image (nodeset n statelite,
//     nodeset n osimage=<img>). The export path is <rootimgdir>/rootimg, the directory
//     itself; nodes mount it as root=nfs:<server>:<rootimgdir>/rootimg (Boot).
//   - The image is read-only. Each node gets its own writable copy of the paths of the
//     litefile table that apply to the image (litefile.image is the osimage, one of its
//     osimage.groups, or ALL) and whose options make them writable: "" (xCAT's default,
//     tmpfs), tmpfs, rw, persistent, link, link,persistent. An image with no such entry
//     gets /var, /tmp and /root. ro, con, link,ro, link,con and localdisk entries are
//     not writable paths and are reported as ignored.
//   - Every writable copy persists across reboots (xCAT's "persistent"): nfsroot keeps
//     them on the server, under <statelitedir>/<osimage>/<node>/, seeded from the image
//     (with the node's CDSLs resolved) the first time the node mounts. xCAT's tmpfs and rw
//     entries, which xCAT resets at every boot, persist too: remove the node's directory
//     to reset it.
//   - <statelitedir> is site.statelitedir (provd's -nfs-state flag wins), else
//     /var/lib/provkit/statelite. It must not lie under site.installdir or site.tftpdir,
//     which provd serves over HTTP to anyone.
//   - When the image's root holds a CDSL inventory (provctl mkcdsl), each node sees its
//     own host-dependent files (nfsroot resolves them per client).
//   - Clients are the networks of the networks table; within them, a client is the node
//     whose hosts.ip is its address (cluster View.NodeByIP). Any other address mounts
//     nothing. A node may mount every exported image (as every node may mount xCAT's
//     /install), and sees its own state and CDSL tree in each.

// DefaultStateliteDir is where nodes' writable state lives when neither provd's
// -nfs-state nor site.statelitedir says otherwise.
const DefaultStateliteDir = "/var/lib/provkit/statelite"

// defaultWritable are the writable paths of a statelite image without litefile entries.
func defaultWritable() []string { return []string{"/var", "/tmp", "/root"} }

// NFSImage is one statelite osimage as provd exports it.
type NFSImage struct {
	// OSImage is the osimage's name.
	OSImage string
	// Export is what nfsroot serves.
	Export nfsroot.Export
	// Ignored lists the litefile entries of the image that are not writable paths, or
	// that could not be used, each with the reason ("/etc/ntp.conf: option ro ...").
	Ignored []string
}

// StateliteDir is the directory that holds the nodes' writable state: dir when not empty
// (provd's -nfs-state), else site.statelitedir, else DefaultStateliteDir. It must be
// absolute and outside site.installdir and site.tftpdir.
func StateliteDir(v *cluster.View, dir string) (string, error) {
	what := "-nfs-state"
	if dir == "" {
		dir, what = v.Site("statelitedir"), "site.statelitedir"
	}
	if dir == "" {
		dir, what = DefaultStateliteDir, "the default state directory"
	}
	if !path.IsAbs(dir) {
		return "", fmt.Errorf("%s %q is not an absolute path", what, dir)
	}
	dir = path.Clean(dir)
	for _, served := range []struct{ key, def string }{{"installdir", "/install"}, {"tftpdir", "/tftpboot"}} {
		d := path.Clean(orDefault(v.Site(served.key), served.def))
		if within(dir, d) || within(d, dir) {
			return "", fmt.Errorf("%s %s overlaps site.%s %s, which provd serves over HTTP: nodes' state would be readable by anyone", what, dir, served.key, d)
		}
	}
	return dir, nil
}

// within reports whether clean absolute path p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// NodeOSImage is the osimage node n boots in state (netboot, statelite): the osimage its
// provmethod names, else, as xCAT names the images it generates,
// <os>-<arch>-<state>-<profile> when that osimage exists.
func NodeOSImage(v *cluster.View, n *cluster.Node, state string) (string, error) {
	if n.OSImage != "" {
		return n.OSImage, nil
	}
	if n.OS != "" && n.Arch != "" && n.Profile != "" {
		name := n.OS + "-" + n.Arch + "-" + state + "-" + n.Profile
		if _, err := v.Object("osimage", name, cluster.ObjectOptions{}); err == nil {
			return name, nil
		}
	}
	return "", fmt.Errorf("node %s: %s needs an osimage (nodeset %s osimage=<image>, or an osimage named <os>-<arch>-%s-<profile>)", n.Name, state, n.Name, state)
}

// StateliteImages lists the osimages to export over NFS: those with provmethod statelite
// and those of nodes whose current state is statelite, sorted and without duplicates.
func StateliteImages(v *cluster.View) []string {
	var out []string
	names, _ := v.ObjectNames("osimage")
	for _, img := range names {
		if o, err := v.Object("osimage", img, cluster.ObjectOptions{}); err == nil && o.Attrs["provmethod"] == "statelite" {
			out = append(out, img)
		}
	}
	for _, name := range v.Nodes() {
		st, _, _ := strings.Cut(v.NodeAttr(name, "currstate"), " ")
		if st != "statelite" {
			continue
		}
		n, err := v.Node(name)
		if err != nil {
			continue
		}
		if img, err := NodeOSImage(v, n, "statelite"); err == nil {
			out = append(out, img)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NFSClients are the networks of the networks table: the only addresses that may mount.
func NFSClients(v *cluster.View) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, r := range v.TableRows("networks") {
		p, err := cluster.NetworkPrefix(r["net"], r["mask"])
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", r["netname"], err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ExportPath is where an image with rootimgdir dir is exported (and found on disk):
// <dir>/rootimg, clean.
func ExportPath(img, dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("osimage %s: rootimgdir is not set (chdef -t osimage %s rootimgdir=...)", img, img)
	}
	if !path.IsAbs(dir) {
		return "", fmt.Errorf("osimage %s: rootimgdir %q is not an absolute path", img, dir)
	}
	return path.Join(dir, "rootimg"), nil
}

// NFSExports works out the exports of view v: one per statelite image, with its writable
// paths from the litefile table and its state under stateDir/<osimage>. An image that
// cannot be exported (no rootimgdir, a name that cannot be a directory) is left out with
// an error in errs. The checks here are about the tables and the image's layout;
// nfsroot's own (the root exists, ...) happen when it serves.
func NFSExports(v *cluster.View, stateDir string) (images []NFSImage, errs []error) {
	clients, err := NFSClients(v)
	if err != nil {
		return nil, []error{err}
	}
	lite := v.TableRows("litefile")
	for _, img := range StateliteImages(v) {
		o, err := v.Object("osimage", img, cluster.ObjectOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("osimage %s: %w", img, err))
			continue
		}
		if strings.ContainsAny(img, "/\x00") || img == "." || img == ".." {
			errs = append(errs, fmt.Errorf("osimage %q: the name cannot be a state directory", img))
			continue
		}
		if t := o.Attrs["rootfstype"]; t != "" && t != "nfs" {
			errs = append(errs, fmt.Errorf("osimage %s: rootfstype %q: provd serves statelite images over NFS only (rootfstype nfs or unset)", img, t))
			continue
		}
		root, err := ExportPath(img, o.Attrs["rootimgdir"])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		groups := strings.Split(o.Attrs["groups"], ",")
		var entries []LiteEntry
		for _, r := range lite {
			im := strings.TrimSpace(r["image"])
			if im != "ALL" && im != img && !slices.Contains(groups, im) {
				continue
			}
			entries = append(entries, LiteEntry{File: r["file"], Options: r["options"]})
		}
		writable, ignored := WritablePaths(entries)
		if len(entries) == 0 {
			writable = defaultWritable()
		}
		writable, dropped := fitImage(root, writable)
		ignored = append(ignored, dropped...)
		images = append(images, NFSImage{
			OSImage: img,
			Export: nfsroot.Export{
				Path:     root,
				Root:     root,
				Writable: writable,
				StateDir: path.Join(stateDir, img),
				Clients:  clients,
			},
			Ignored: ignored,
		})
	}
	return images, errs
}

// A LiteEntry is one litefile row: a path of the image (a directory ends with "/") and
// its options.
type LiteEntry struct {
	File    string
	Options string
}

// ErrNotWritable marks litefile entries that are valid but name no writable path (ro,
// con, link,ro, link,con, localdisk).
var ErrNotWritable = errors.New("not a writable path")

// ParseLiteEntry reads one litefile entry: the clean absolute path it names, or an error
// saying why it is not a writable path (ErrNotWritable for ro, con, link,ro, link,con and
// localdisk entries; a description of the problem for bad paths, the root itself and
// unknown options).
func ParseLiteEntry(e LiteEntry) (string, error) {
	f := strings.TrimSpace(e.File)
	if !strings.HasPrefix(f, "/") {
		return "", fmt.Errorf("file %q is not an absolute path", e.File)
	}
	rel, err := cdsl.CleanPath(f)
	if err != nil {
		return "", fmt.Errorf("file %q: %w", e.File, err)
	}
	for _, c := range strings.Split(rel, "/") {
		if strings.TrimSpace(c) != c {
			return "", fmt.Errorf("file %q: name %q begins or ends with blanks", e.File, c)
		}
	}
	var opts []string
	for _, o := range strings.Split(e.Options, ",") {
		if o = strings.ToLower(strings.TrimSpace(o)); o != "" {
			opts = append(opts, o)
		}
	}
	slices.Sort(opts)
	opts = slices.Compact(opts)
	switch strings.Join(opts, ",") {
	case "", "tmpfs", "rw", "persistent", "link", "link,persistent":
		return "/" + rel, nil
	case "ro", "con", "link,ro", "con,link", "localdisk":
		return "", fmt.Errorf("option %s: %w", e.Options, ErrNotWritable)
	}
	return "", fmt.Errorf("options %q: want tmpfs, rw, persistent, ro, con, link[,persistent|,ro|,con] or localdisk", e.Options)
}

// WritablePaths turns litefile entries into nfsroot's writable paths: clean, sorted,
// without duplicates, and without paths below another writable path (a node's /var
// already holds its /var/log). Entries it does not use are described in ignored.
func WritablePaths(entries []LiteEntry) (writable, ignored []string) {
	var all []string
	for _, e := range entries {
		p, err := ParseLiteEntry(e)
		if err != nil {
			ignored = append(ignored, fmt.Sprintf("litefile %s: %v", strings.TrimSpace(e.File), err))
			continue
		}
		all = append(all, p)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	for _, p := range all {
		if i := slices.IndexFunc(writable, func(w string) bool { return within(p, w) }); i >= 0 {
			ignored = append(ignored, fmt.Sprintf("litefile %s: below writable %s", p, writable[i]))
			continue
		}
		writable = append(writable, p)
	}
	return writable, ignored
}

// fitImage drops the writable paths that the image at root cannot have: paths in its
// CDSL infrastructure, and paths whose directory is not a directory of the image (nfsroot
// refuses both, and would refuse the whole export). A root that cannot be read is left
// to nfsroot to report.
func fitImage(root string, writable []string) (kept, dropped []string) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return writable, nil
	}
	defer r.Close()
	var snap *cdsl.Snapshot
	if repo, err := cdsl.Open(root); err == nil {
		snap = repo.Snapshot()
		repo.Close()
	}
	for _, w := range writable {
		rel := strings.TrimPrefix(w, "/")
		parent := path.Dir(rel)
		if snap != nil {
			l := snap.Layout()
			bad := ""
			for _, infra := range []string{l.Tree, l.SharedTree, l.Link, cdsl.DefaultInventory} {
				if within("/"+rel, "/"+infra) || within("/"+infra, "/"+rel) {
					bad = infra
					break
				}
			}
			if bad != "" {
				dropped = append(dropped, fmt.Sprintf("litefile %s: overlaps the CDSL infrastructure /%s", w, bad))
				continue
			}
			if parent != "." {
				parent = snap.Resolve(path.Join(l.Tree, l.Default), parent)
			}
		}
		if parent != "." {
			fi, err := r.Lstat(parent)
			if err != nil || !fi.IsDir() {
				why := "not a directory"
				if errors.Is(err, fs.ErrNotExist) {
					why = "missing"
				}
				dropped = append(dropped, fmt.Sprintf("litefile %s: its directory /%s is %s in the image", w, parent, why))
				continue
			}
		}
		kept = append(kept, w)
	}
	return kept, dropped
}

// NFSViews tells nfsroot which node a client is, from the current cluster view: the node
// whose hosts.ip is the client's address.
type NFSViews struct {
	Views ViewSource
}

var _ nfsroot.Views = (*NFSViews)(nil)

// View implements nfsroot.Views.
func (n *NFSViews) View(_ context.Context, client netip.Addr) (nfsroot.View, error) {
	node, err := n.Views.Current().NodeByIP(client)
	if err != nil {
		return nfsroot.View{}, fmt.Errorf("%w: %w", nfsroot.ErrUnknownClient, err)
	}
	return nfsroot.View{Node: node.Name}, nil
}
