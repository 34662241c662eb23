package image

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// An AptSource is one repository of an apt configuration.
type AptSource struct {
	Types      []string // "deb", "deb-src"
	URI        string
	Suites     []string
	Components []string
}

// ParseAptSources reads apt sources in either format: one-line ("deb [opts] uri suite
// comp...", sources.list) or deb822 (stanzas of "Types:", "URIs:", "Suites:",
// "Components:", *.sources). Disabled stanzas ("Enabled: no") and comments are skipped.
// A malformed line or stanza is an error naming its line number.
func ParseAptSources(r io.Reader, deb822 bool) ([]AptSource, error) {
	if deb822 {
		return parseDeb822(r)
	}
	var out []AptSource
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		typ := f[0]
		if typ != "deb" && typ != "deb-src" {
			return nil, fmt.Errorf("image: apt sources line %d: type %q (want deb or deb-src)", line, typ)
		}
		f = f[1:]
		// Options: "[arch=amd64 signed-by=/x]" possibly split over several fields.
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			for len(f) > 0 {
				end := strings.HasSuffix(f[0], "]")
				f = f[1:]
				if end {
					break
				}
			}
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("image: apt sources line %d: want \"%s URI SUITE [COMPONENT...]\"", line, typ)
		}
		out = append(out, AptSource{Types: []string{typ}, URI: f[0], Suites: []string{f[1]}, Components: f[2:]})
	}
	return out, sc.Err()
}

func parseDeb822(r io.Reader) ([]AptSource, error) {
	var out []AptSource
	sc := bufio.NewScanner(r)
	line, start := 0, 0
	cur := map[string]string{}
	var last string
	flush := func() error {
		defer func() { cur = map[string]string{}; last = "" }()
		if len(cur) == 0 {
			return nil
		}
		if strings.EqualFold(cur["enabled"], "no") {
			return nil
		}
		s := AptSource{Types: strings.Fields(cur["types"]), Suites: strings.Fields(cur["suites"]),
			Components: strings.Fields(cur["components"])}
		uris := strings.Fields(cur["uris"])
		if len(s.Types) == 0 || len(uris) == 0 || len(s.Suites) == 0 {
			return fmt.Errorf("image: apt sources stanza at line %d: needs Types, URIs and Suites", start)
		}
		for _, u := range uris {
			s.URI = u
			out = append(out, s)
		}
		return nil
	}
	for sc.Scan() {
		line++
		l := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if strings.TrimSpace(l) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if len(cur) == 0 {
			start = line
		}
		if l[0] == ' ' || l[0] == '\t' { // continuation of the previous field
			if last == "" {
				return nil, fmt.Errorf("image: apt sources line %d: continuation without a field", line)
			}
			cur[last] += " " + strings.TrimSpace(l)
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("image: apt sources line %d: %q is not \"Field: value\"", line, l)
		}
		last = strings.ToLower(strings.TrimSpace(k))
		cur[last] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// AptMirror returns the mirror URI that the apt configuration under root (usually "/")
// uses for Debian's main archive: the first "deb" source whose suite is suite (or, if
// none names it, the first "deb" source that is not a security or updates archive).
// It reads etc/apt/sources.list and etc/apt/sources.list.d/*.list and *.sources.
func AptMirror(root, suite string) (string, error) {
	var all []AptSource
	read := func(p string, deb822 bool) error {
		f, err := os.Open(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		defer f.Close()
		s, err := ParseAptSources(f, deb822)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, s...)
		return nil
	}
	if err := read(filepath.Join(root, "etc/apt/sources.list"), false); err != nil {
		return "", err
	}
	d := filepath.Join(root, "etc/apt/sources.list.d")
	ents, _ := os.ReadDir(d)
	for _, e := range ents {
		var err error
		switch {
		case strings.HasSuffix(e.Name(), ".list"):
			err = read(filepath.Join(d, e.Name()), false)
		case strings.HasSuffix(e.Name(), ".sources"):
			err = read(filepath.Join(d, e.Name()), true)
		}
		if err != nil {
			return "", err
		}
	}
	var fallback string
	for _, s := range all {
		if !slices.Contains(s.Types, "deb") {
			continue
		}
		if slices.Contains(s.Suites, suite) {
			return s.URI, nil
		}
		if fallback == "" && !strings.Contains(s.URI, "security") {
			for _, su := range s.Suites {
				if !strings.Contains(su, "-") {
					fallback = s.URI
					break
				}
			}
		}
	}
	if fallback != "" {
		return fallback, nil
	}
	return "", fmt.Errorf("image: no Debian mirror for suite %q in the apt sources under %s: %w", suite, root, fs.ErrNotExist)
}
