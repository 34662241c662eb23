package cluster

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// LsdefFormat selects one of lsdef's output forms.
type LsdefFormat int

const (
	// LsdefLong is "Object name: X" then the attributes, indented and sorted.
	LsdefLong LsdefFormat = iota
	// LsdefShort is "name  (type)" per object (lsdef -s, or lsdef with no names).
	LsdefShort
	// LsdefCompressed is "name: attr=value" per attribute (lsdef -c).
	LsdefCompressed
	// LsdefStanza is the stanza file that mkdef -z reads (lsdef -z).
	LsdefStanza
)

// WriteLsdef prints objects as lsdef does (shared/xcat/formats.md §4). When only is not
// empty, just those attributes are printed, unset ones as "attr=". multiType adds the
// "  (type)" suffix to long-form headers, as lsdef does when several types are listed.
func WriteLsdef(w io.Writer, objs []*Object, f LsdefFormat, only []string, multiType bool) error {
	bw := bufio.NewWriter(w)
	if f == LsdefStanza {
		bw.WriteString("# <xCAT data object stanza file>\n")
	}
	for _, o := range objs {
		attrs := o.SortedAttrs()
		if len(only) > 0 {
			attrs = only
		}
		switch f {
		case LsdefShort:
			fmt.Fprintf(bw, "%s  (%s)\n", o.Name, o.Type)
			continue
		case LsdefStanza:
			fmt.Fprintf(bw, "\n%s:\n    objtype=%s\n", o.Name, o.Type)
		case LsdefLong:
			if multiType {
				fmt.Fprintf(bw, "Object name: %s  (%s)\n", o.Name, o.Type)
			} else {
				fmt.Fprintf(bw, "Object name: %s\n", o.Name)
			}
		}
		for _, a := range attrs {
			val, ok := o.Attrs[a]
			if !ok && len(only) == 0 {
				continue
			}
			if f == LsdefCompressed {
				fmt.Fprintf(bw, "%s: %s=%s\n", o.Name, a, val)
			} else {
				fmt.Fprintf(bw, "    %s=%s\n", a, val)
			}
		}
	}
	return bw.Flush()
}

// ReadStanza parses an xCAT stanza file (lsdef -z output, mkdef -z input): "name:" lines
// start an object, "attr=value" lines (indented) belong to it, "objtype=" gives its type,
// "#" lines and blank lines are ignored. An object without objtype is a node.
func ReadStanza(r io.Reader) ([]*Object, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var out []*Object
	var cur *Object
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Text()
		t := strings.TrimSpace(raw)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasSuffix(t, ":") && !strings.Contains(t, "=") {
			cur = &Object{Name: strings.TrimSuffix(t, ":"), Type: "node", Attrs: map[string]string{}}
			if cur.Name == "" {
				return nil, fmt.Errorf("stanza line %d: an empty object name", line)
			}
			out = append(out, cur)
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("stanza line %d: %q is neither \"name:\" nor \"attr=value\"", line, t)
		}
		if cur == nil {
			return nil, fmt.Errorf("stanza line %d: attribute %q before any \"name:\" line", line, k)
		}
		if k == "objtype" {
			cur.Type = v
			continue
		}
		cur.Attrs[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("stanza: %w", err)
	}
	return out, nil
}
