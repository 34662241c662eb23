package image

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ErrModuleNotFound is wrapped by errors about a kernel module that is neither a file of
// the kernel's module tree nor built in.
var ErrModuleNotFound = errors.New("kernel module not found")

// A Module is one kernel module file to load.
type Module struct {
	Name string // canonical name: "virtio_net"
	Path string // relative to the version's module directory: "kernel/drivers/net/virtio_net.ko.xz"
}

// ModuleIndex is the module tree of one kernel version: which file each module is,
// what it depends on, what is built in.
type ModuleIndex struct {
	Dir     string // <root>/lib/modules/<version>
	Version string
	files   map[string]string   // module name -> path relative to Dir
	deps    map[string][]string // module name -> names it depends on (from modules.dep)
	soft    map[string][]string // module name -> "pre:" soft dependencies
	aliases map[string]string   // exact alias -> module name (modules.alias)
	builtin map[string]bool
	haveDep bool
}

// modName turns a file name or a module name into the canonical module name: the kernel
// treats "-" and "_" alike and reports "_".
func modName(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".gz", ".zst"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// ModulesDir returns <root>/lib/modules/<version> (or the /usr/lib form), and the
// version: if version is empty, root must hold exactly one.
func ModulesDir(root, version string) (dir, ver string, err error) {
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		b := filepath.Join(root, base)
		if version != "" {
			d := filepath.Join(b, version)
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				return d, version, nil
			}
			continue
		}
		ents, err := os.ReadDir(b)
		if err != nil {
			continue
		}
		var vers []string
		for _, e := range ents {
			if e.IsDir() {
				vers = append(vers, e.Name())
			}
		}
		if len(vers) == 1 {
			return filepath.Join(b, vers[0]), vers[0], nil
		}
		if len(vers) > 1 {
			return "", "", fmt.Errorf("image: %s holds kernels %s: name the version", b, strings.Join(vers, ", "))
		}
	}
	if version != "" {
		return "", "", fmt.Errorf("image: no modules of kernel %s under %s: %w", version, root, fs.ErrNotExist)
	}
	return "", "", fmt.Errorf("image: no kernel modules under %s: %w", root, fs.ErrNotExist)
}

// LoadModules indexes the modules of kernel version under root (an image, or a kernel
// package extracted with ExtractDeb). It reads modules.dep when depmod has made one;
// otherwise (a kernel package as shipped has none) it lists the module files and reads
// each needed module's dependencies from its .modinfo section, so no depmod is needed.
func LoadModules(root, version string) (*ModuleIndex, error) {
	dir, ver, err := ModulesDir(root, version)
	if err != nil {
		return nil, err
	}
	ix := &ModuleIndex{Dir: dir, Version: ver, files: map[string]string{}, deps: map[string][]string{},
		soft: map[string][]string{}, aliases: map[string]string{}, builtin: map[string]bool{}}
	if f, err := os.Open(filepath.Join(dir, "modules.dep")); err == nil {
		err = ix.parseDep(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("image: %s/modules.dep: %w", dir, err)
		}
		ix.haveDep = true
	} else {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && isModuleFile(d.Name()) {
				rel, _ := filepath.Rel(dir, p)
				n := modName(d.Name())
				if _, dup := ix.files[n]; !dup {
					ix.files[n] = filepath.ToSlash(rel)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("image: list modules in %s: %w", dir, err)
		}
	}
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				ix.builtin[modName(l)] = true
			}
		}
		f.Close()
	}
	if f, err := os.Open(filepath.Join(dir, "modules.softdep")); err == nil {
		ix.parseSoftdep(f)
		f.Close()
	}
	if f, err := os.Open(filepath.Join(dir, "modules.alias")); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) == 3 && fl[0] == "alias" && !strings.ContainsAny(fl[1], "*?[") {
				ix.aliases[strings.ReplaceAll(fl[1], "-", "_")] = modName(fl[2])
			}
		}
		f.Close()
	}
	return ix, nil
}

func isModuleFile(name string) bool {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.gz", ".ko.zst"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// parseDep reads modules.dep: "kernel/a/b.ko.xz: kernel/c/d.ko.xz kernel/e.ko.xz".
func (ix *ModuleIndex) parseDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		file, deps, ok := strings.Cut(l, ":")
		file = strings.TrimSpace(file)
		if !ok || file == "" || !isModuleFile(file) {
			return fmt.Errorf("line %d: %q is not \"module: dependencies\"", line, l)
		}
		n := modName(file)
		ix.files[n] = file
		var ds []string
		for _, d := range strings.Fields(deps) {
			if !isModuleFile(d) {
				return fmt.Errorf("line %d: dependency %q is not a module file", line, d)
			}
			ds = append(ds, modName(d))
			if _, ok := ix.files[modName(d)]; !ok {
				ix.files[modName(d)] = d
			}
		}
		ix.deps[n] = ds
	}
	return sc.Err()
}

// parseSoftdep reads "softdep mod pre: a b post: c" lines; only pre: matters for load
// order, and soft dependencies that cannot be found are skipped.
func (ix *ModuleIndex) parseSoftdep(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 3 || fl[0] != "softdep" {
			continue
		}
		n := modName(fl[1])
		pre := false
		for _, f := range fl[2:] {
			switch f {
			case "pre:":
				pre = true
			case "post:":
				pre = false
			default:
				if pre {
					ix.soft[n] = append(ix.soft[n], strings.ReplaceAll(f, "-", "_"))
				}
			}
		}
	}
}

// lookup finds the canonical module name of name (module or exact alias).
func (ix *ModuleIndex) lookup(name string) (string, bool) {
	n := modName(name)
	if _, ok := ix.files[n]; ok {
		return n, true
	}
	if a, ok := ix.aliases[n]; ok {
		if _, ok := ix.files[a]; ok {
			return a, true
		}
	}
	return n, false
}

// modinfo reads the dependencies of a module from its .modinfo section.
func (ix *ModuleIndex) modinfo(n string) (deps, softPre []string, err error) {
	rel := ix.files[n]
	data, err := ReadModule(filepath.Join(ix.Dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, nil, err
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, nil, fmt.Errorf("image: module %s: %w", rel, err)
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, nil, nil
	}
	info, err := sec.Data()
	if err != nil {
		return nil, nil, fmt.Errorf("image: module %s: .modinfo: %w", rel, err)
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					deps = append(deps, modName(d))
				}
			}
		case "softdep":
			pre := false
			for _, f := range strings.Fields(v) {
				switch f {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						softPre = append(softPre, modName(f))
					}
				}
			}
		}
	}
	return deps, softPre, nil
}

// Resolve returns the module files to load for names, dependencies first, each once.
// Built-in modules are skipped; a name that is neither a module nor built in is an
// error naming it. Soft "pre:" dependencies are added when they exist.
func (ix *ModuleIndex) Resolve(names ...string) ([]Module, error) {
	var out []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, soft bool, chain []string) error
	visit = func(name string, soft bool, chain []string) error {
		n, ok := ix.lookup(name)
		if state[n] == 2 {
			return nil
		}
		if !ok {
			if ix.builtin[n] || soft {
				return nil
			}
			return fmt.Errorf("image: module %q (kernel %s, %s): %w", name, ix.Version, ix.Dir, ErrModuleNotFound)
		}
		if state[n] == 1 {
			return fmt.Errorf("image: module dependency cycle: %s", strings.Join(append(chain, n), " -> "))
		}
		state[n] = 1
		deps, softs := ix.deps[n], ix.soft[n]
		if !ix.haveDep {
			var err error
			deps, softs, err = ix.modinfo(n)
			if err != nil {
				return err
			}
		}
		for _, s := range softs {
			if err := visit(s, true, append(chain, n)); err != nil {
				return err
			}
		}
		for _, d := range deps {
			if err := visit(d, false, append(chain, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, Module{Name: n, Path: ix.files[n]})
		return nil
	}
	for _, name := range names {
		if strings.TrimSpace(name) == "" {
			continue
		}
		if err := visit(strings.TrimSpace(name), false, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReadModule reads a module file, decompressing .ko.xz, .ko.gz and .ko.zst (Debian
// compresses modules with xz since trixie).
func ReadModule(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("image: module: %w", err)
	}
	defer f.Close()
	if strings.HasSuffix(p, ".ko") {
		return io.ReadAll(f)
	}
	r, _, err := Decompress(f)
	if err != nil {
		return nil, fmt.Errorf("image: module %s: %w", p, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("image: module %s: %w", p, err)
	}
	return b, nil
}

// depLines renders modules.dep and modules.softdep for a set of resolved modules, with
// paths as they are stored in the initramfs.
func depLines(ix *ModuleIndex, mods []Module, stored func(Module) string) (dep, softdep []byte, err error) {
	byName := map[string]Module{}
	for _, m := range mods {
		byName[m.Name] = m
	}
	var b, sb bytes.Buffer
	for _, m := range mods {
		deps, softs := ix.deps[m.Name], ix.soft[m.Name]
		if !ix.haveDep {
			if deps, softs, err = ix.modinfo(m.Name); err != nil {
				return nil, nil, err
			}
		}
		var pre []string
		for _, s := range softs {
			if n, ok := ix.lookup(s); ok {
				if _, in := byName[n]; in {
					pre = append(pre, n)
				}
			}
		}
		if len(pre) > 0 {
			fmt.Fprintf(&sb, "softdep %s pre: %s\n", m.Name, strings.Join(pre, " "))
		}
		// modules.dep lists all dependencies, indirect ones too, the last to load first.
		all := transitive(m.Name, ix, byName, deps)
		fmt.Fprintf(&b, "%s:", stored(m))
		for _, d := range all {
			fmt.Fprintf(&b, " %s", stored(byName[d]))
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), sb.Bytes(), nil
}

func transitive(n string, ix *ModuleIndex, byName map[string]Module, direct []string) []string {
	var order []string
	seen := map[string]bool{n: true}
	var walk func(ds []string)
	walk = func(ds []string) {
		for _, d := range ds {
			if seen[d] {
				continue
			}
			if _, ok := byName[d]; !ok {
				continue // built in
			}
			seen[d] = true
			order = append(order, d)
			next := ix.deps[d]
			if !ix.haveDep {
				next, _, _ = ix.modinfo(d)
			}
			walk(next)
		}
	}
	walk(direct)
	slices.Reverse(order)
	return order
}
