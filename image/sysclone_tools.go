package image

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DeployTools are the programs a sysclone deploy runs from its initramfs, besides the
// layout's mkfs programs (DiskLayout.MkfsTools).
var DeployTools = []string{"sfdisk", "partx"}

// ProgramFiles finds programs in the tree root ("/" for this machine, or an image) and
// returns what an initramfs needs to run them: each program, the shared libraries it
// loads (DT_NEEDED, recursively) and its ELF interpreter, as InitramfsSpec.Files maps
// them (path inside the initramfs -> path on this machine). Programs are looked up in
// usr/sbin, usr/bin, sbin and bin, libraries in the multiarch and lib directories; a
// symlink is followed inside root. A program or library that is not found is an error
// naming it.
func ProgramFiles(root string, progs ...string) (map[string]string, error) {
	files := map[string]string{}
	var libDirs []string
	for _, d := range []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err == nil && fi.IsDir() {
			libDirs = append(libDirs, d)
		}
	}
	var addELF func(rel string) error
	addELF = func(rel string) error {
		if _, done := files[rel]; done {
			return nil
		}
		host, err := resolveIn(root, rel)
		if err != nil {
			return err
		}
		files[rel] = host
		f, err := elf.Open(host)
		if err != nil {
			if strings.Contains(rel, ".so") {
				return fmt.Errorf("image: %s: %w", rel, err)
			}
			return nil // a script: it carries no libraries
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				b := make([]byte, p.Filesz)
				if _, err := p.ReadAt(b, 0); err == nil {
					interp := strings.TrimPrefix(strings.TrimRight(string(b), "\x00"), "/")
					if err := addELF(path.Clean(interp)); err != nil {
						return err
					}
				}
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("image: %s: %w", rel, err)
		}
		for _, lib := range libs {
			found := ""
			for _, d := range libDirs {
				if _, err := resolveIn(root, path.Join(d, lib)); err == nil {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("image: %s needs %s, which is not in %s: %w", rel, lib, root, fs.ErrNotExist)
			}
			if err := addELF(found); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range progs {
		if p == "" || strings.Contains(p, "/") {
			return nil, fmt.Errorf("image: program name %q", p)
		}
		found := ""
		for _, d := range []string{"usr/sbin", "usr/bin", "sbin", "bin"} {
			if host, err := resolveIn(root, path.Join(d, p)); err == nil {
				if fi, err := os.Stat(host); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					found = path.Join(d, p)
					break
				}
			}
		}
		if found == "" {
			return nil, fmt.Errorf("image: program %s is not in %s: %w", p, root, fs.ErrNotExist)
		}
		// Always at usr/sbin in the initramfs: nodeinit's PATH finds it there.
		if err := addELF(found); err != nil {
			return nil, err
		}
		if found != "usr/sbin/"+p {
			files["usr/sbin/"+p] = files[found]
			delete(files, found)
		}
	}
	return files, nil
}

// resolveIn follows rel's symlinks inside root (an absolute link target is taken from
// root) and returns the path of the regular file on this machine.
func resolveIn(root, rel string) (string, error) {
	cur := path.Clean("/" + rel)
	for range 40 {
		// Resolve every directory component too: /lib -> usr/lib on merged-/usr systems.
		parts := strings.Split(strings.TrimPrefix(cur, "/"), "/")
		resolved := "/"
		changed := false
		for i, part := range parts {
			next := path.Join(resolved, part)
			fi, err := os.Lstat(filepath.Join(root, next))
			if err != nil {
				return "", err
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				target, err := os.Readlink(filepath.Join(root, next))
				if err != nil {
					return "", err
				}
				if !path.IsAbs(target) {
					target = path.Join(resolved, target)
				}
				cur = path.Clean(path.Join(append([]string{target}, parts[i+1:]...)...))
				changed = true
				break
			}
			resolved = next
		}
		if !changed {
			p := filepath.Join(root, resolved)
			fi, err := os.Stat(p)
			if err != nil {
				return "", err
			}
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("%s is not a regular file", p)
			}
			return p, nil
		}
	}
	return "", errors.New("too many symlinks: " + rel)
}
