package cluster

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// NodeSource is what noderange expansion needs to know about the cluster.
type NodeSource interface {
	IsNode(name string) bool // an enabled nodelist row with that exact name
	Nodes() []string         // every node name (any order)
	// GroupMembers returns the member nodes of group name and whether such a group exists
	// (a nodegroup row, or a name in some node's nodelist.groups); dynamic groups resolved.
	GroupMembers(name string) (members []string, ok bool, err error)
	// Match returns the nodes whose resolved attribute attr ("table.col" or an object
	// attribute name) satisfies op ("==", "!=", "=~", "!~") against val.
	Match(attr, op, val string) ([]string, error)
}

// RangeOptions control ExpandNoderange. The zero value is verify mode with xCAT's defaults.
type RangeOptions struct {
	Generic  bool   // non-verify mode (mkdef, nodeadd): names need not exist
	Prefix   string // for bare numbers; "" means "node" (xCAT's XCAT_NODE_PREFIX)
	Suffix   string // for bare numbers (XCAT_NODE_SUFFIX)
	MaxNodes int    // refuse expansions larger than this; 0 means 1,000,000
	// ReadFile reads a ^file; nil means os.ReadFile.
	ReadFile func(path string) ([]byte, error)
}

// MissingError is returned in verify mode when names are neither nodes nor groups. The
// names are in expansion order, each once.
type MissingError struct{ Names []string }

func (e *MissingError) Error() string {
	return "Invalid nodes and/or groups in noderange: " + strings.Join(e.Names, ",")
}

// ErrRangeTooLarge is returned, wrapped with the expression and the size, when an
// expression would produce more names than RangeOptions.MaxNodes. Sizes are computed
// before names are made, so a huge range is refused at once.
var ErrRangeTooLarge = errors.New("noderange expansion too large")

// ErrRangeSyntax is wrapped by the errors for malformed noderanges.
var ErrRangeSyntax = errors.New("malformed noderange")

const (
	nrDefaultMax = 1_000_000
	nrMaxDepth   = 64
)

// ExpandNoderange returns the sorted, duplicate-free node names of expr, an xCAT
// noderange, expanded as xCAT's NodeRange.pm (noderange, expandatom) does it.
//
// An expression is a list of atoms joined by "," (union) or "@" (intersection, binding
// tighter: "a,b@c" is a plus the nodes in both b and c). "-atom" excludes; exclusions are
// applied after everything else, wherever they appear. Each atom is, in this order:
//
//	node01            an existing node name, taken literally
//	(a,b)             a parenthesised noderange
//	grp               a group: its members (a defined group with no members is empty)
//	mgt==ipmi         nodes whose attribute matches (==, !=, =~ regex, !~; = means ==)
//	10                a bare number: Prefix+10+Suffix ("node10")
//	/re               every node whose name matches ^re$
//	node[01-10]       brackets: ranges, lists and several bracket groups multiplied out
//	node10+3          node10 up to node13
//	node01-node10     a range (also ":"); an odd number of "-" is split at the middle one
//	^/path            every line's first word of the file, each a noderange of its own
//
// Ranges keep the zero padding of their start: node01-node10 gives two-digit names,
// node1-node10 gives node1..node10. The result is a set sorted by byte order (node10 before
// node2). In verify mode (the default), names that are neither a node nor a group are
// reported in a *MissingError; in generic mode (RangeOptions.Generic, used by mkdef and
// nodeadd) they are returned as names to create.
//
// Differences from xCAT, chosen for safety or clarity (checked by running xCAT's
// NodeRange.pm code on 4,000 generated expressions: every other result is the same):
//   - malformed input is an error naming the atom, where xCAT yields nothing, a literal
//     name or garbage: unbalanced brackets or parentheses, a bad regular expression, a range
//     that runs backwards (node10-node05) or whose ends cannot be padded alike
//     (node01-node5, which Perl's ".." runs as nothing), "+N" on a name without a number, a
//     bracket range with no name before "[", brackets inside brackets, an attribute
//     selector without an operator;
//   - an unreadable ^file is an error (xCAT skips it), and "-^file" and "@^file" exclude and
//     intersect (xCAT always adds the file's nodes);
//   - a "(" that does not begin an atom belongs to it, so /d(1.?.?|200) is a regular
//     expression (xCAT breaks it into a group), and nested parentheses split correctly
//     (xCAT's comma split mis-cuts "(a,(b,c))");
//   - missing names are reported once each, and those found before a ^file atom are not
//     forgotten; a file line ending in CR LF works.
//
// In verify mode, when some names do not exist, it returns the names that do together
// with a *MissingError listing the others. src may be nil for a purely syntactic expansion
// in generic mode (no names are known, so none is taken as a node or group).
func ExpandNoderange(expr string, src NodeSource, opt RangeOptions) ([]string, error) {
	e := &nrExpander{
		src:      src,
		prefix:   opt.Prefix,
		suffix:   opt.Suffix,
		max:      int64(opt.MaxNodes),
		readFile: opt.ReadFile,
		expr:     expr,
	}
	if e.prefix == "" {
		e.prefix = "node"
	}
	if e.max <= 0 {
		e.max = nrDefaultMax
	}
	e.budget = e.max
	if e.readFile == nil {
		e.readFile = os.ReadFile
	}
	names, err := e.noderange(expr, nrMode{verify: !opt.Generic})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(e.missing) > 0 {
		return names, &MissingError{Names: e.missing}
	}
	return names, nil
}

type nrExpander struct {
	src            NodeSource
	prefix, suffix string
	max, budget    int64 // names ranges may still generate
	readFile       func(string) ([]byte, error)
	expr           string
	missing        []string
	missingSeen    map[string]bool
	depth          int
}

// nrMode is how an atom is expanded.
type nrMode struct {
	verify bool // names must exist (xCAT's verify)
	// generic is xCAT's genericrange: a purely textual expansion, no node or group lookups;
	// used for the first bracket group of a multi-bracket atom.
	generic bool
	// inner marks that first-level expansion, whose names are prefixes of the final ones
	// and so are not counted against the size limit.
	inner bool
}

func (e *nrExpander) errorf(format string, args ...any) error {
	return fmt.Errorf("noderange %q: %s: %w", e.expr, fmt.Sprintf(format, args...), ErrRangeSyntax)
}

func (e *nrExpander) enter() error {
	e.depth++
	if e.depth > nrMaxDepth {
		return e.errorf("nested more than %d levels deep", nrMaxDepth)
	}
	return nil
}

// noderange expands a full expression: xCAT's noderange().
func (e *nrExpander) noderange(s string, m nrMode) ([]string, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer func() { e.depth-- }()
	if strings.ContainsAny(s, `'"`) {
		s = strings.Map(func(r rune) rune {
			if r == '\'' || r == '"' {
				return -1
			}
			return r
		}, s)
	}
	if err := e.checkBalanced(s); err != nil {
		return nil, err
	}
	var nodes []string
	var del map[string]struct{}
	if i := nrGroupStart(s); i >= 0 {
		// The first parenthesised group is combined with the text before it right away.
		start := s[:i]
		_, middle, end, ok := rxExtractBracketed(s[i:])
		if !ok {
			return nil, e.errorf("unbalanced parentheses in %q", s)
		}
		op := ","
		if strings.HasSuffix(start, "-") {
			op = ",-"
		} else if strings.HasSuffix(start, "@") {
			op = "@"
		}
		start = strings.TrimSuffix(start, ",-")
		start = strings.TrimSuffix(start, ",")
		start = strings.TrimSuffix(start, "@")
		var err error
		if nodes, err = e.noderange(start, m); err != nil {
			return nil, err
		}
		inner, err := e.noderange(middle[1:len(middle)-1], m)
		if err != nil {
			return nil, err
		}
		switch op {
		case "@":
			nodes = nrIntersect(nodes, inner)
		case ",-":
			nodes = nrSubtract(nodes, nrSetOf(inner))
		default:
			nodes = append(nodes, inner...)
		}
		s = end
	}
	atoms, seps := nrSplitTop(s, ',', "[(", ")]")
	if len(atoms) == 1 {
		atoms, seps = nrSplitTop(s, '@', "(", ")")
	}
	for i, atom := range atoms {
		op := byte(',')
		if i > 0 {
			op = seps[i-1]
		}
		exclude := false
		if strings.HasPrefix(atom, "-") {
			atom = atom[1:]
			exclude = op == ','
		} else if strings.HasPrefix(atom, "@") {
			atom = atom[1:]
			op = '@'
		}
		if atom == "" {
			continue
		}
		var set []string
		var err error
		if atom[0] == '^' {
			set, err = e.file(atom[1:], m)
		} else {
			set, err = e.atom(atom, m)
		}
		if err != nil {
			return nil, err
		}
		switch {
		case op == '@':
			nodes = nrIntersect(nodes, set)
		case exclude:
			if del == nil {
				del = make(map[string]struct{}, len(set))
			}
			for _, n := range set {
				del[n] = struct{}{}
			}
		default:
			nodes = append(nodes, set...)
		}
	}
	if len(del) > 0 {
		nodes = nrSubtract(nodes, del)
	}
	return nodes, nil
}

// file expands ^path: the first word of each line (up to a space, tab or colon) is a
// noderange; lines starting with # or ^ are ignored.
func (e *nrExpander) file(path string, m nrMode) ([]string, error) {
	data, err := e.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("noderange %q: ^%s: %w", e.expr, path, err)
	}
	var nodes []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		if i := strings.IndexAny(line, ":\t "); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSuffix(line, "\r")
		set, err := e.noderange(line, m)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, set...)
	}
	return nodes, nil
}

// atom expands one atom: xCAT's expandatom().
func (e *nrExpander) atom(a string, m nrMode) ([]string, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer func() { e.depth-- }()
	if a == "" {
		return nil, nil
	}
	lookup := !m.generic && e.src != nil
	if lookup && e.src.IsNode(a) {
		return []string{a}, nil
	}
	if len(a) >= 2 && a[0] == '(' && a[len(a)-1] == ')' {
		return e.noderange(a[1:len(a)-1], m)
	}
	if strings.IndexByte(a, '@') >= 0 {
		return e.noderange(a, m)
	}
	var members []string
	if lookup {
		mem, ok, err := e.src.GroupMembers(a)
		if err != nil {
			return nil, fmt.Errorf("noderange %q: group %s: %w", e.expr, a, err)
		}
		if ok && len(mem) == 0 {
			return nil, nil // a defined group without members
		}
		members = mem
	}
	if strings.ContainsAny(a, "=~") {
		return e.selector(a)
	}
	if nrAllDigits(a) {
		return e.atom(e.prefix+a+e.suffix, m)
	}
	if len(members) > 0 {
		return members, nil
	}
	if a[0] == '/' {
		if !m.verify || m.generic {
			return []string{a}, nil
		}
		return e.regex(a)
	}
	if strings.IndexByte(a, '[') >= 0 {
		if err := nrCheckBrackets(a); err != nil {
			return nil, e.errorf("%v", err)
		}
	}
	if start, content, ending, ok := nrBracket(a); ok {
		return e.bracket(a, start, content, ending, m)
	}
	if strings.IndexByte(a, '+') >= 0 {
		sp, err := e.plus(a)
		if err != nil {
			return nil, err
		}
		return e.span(a, sp, m)
	}
	if strings.ContainsAny(a, "-:") {
		return e.rangeAtom(a, m)
	}
	return e.miss(a, m), nil
}

// miss is the fall-through: a missing name in verify mode, a literal name otherwise.
func (e *nrExpander) miss(a string, m nrMode) []string {
	if !m.verify {
		return []string{a}
	}
	if e.missingSeen == nil {
		e.missingSeen = make(map[string]bool)
	}
	if !e.missingSeen[a] {
		e.missingSeen[a] = true
		e.missing = append(e.missing, a)
	}
	return nil
}

// selector expands table.col==val and its kin (xCAT's nodesbycriteria).
func (e *nrExpander) selector(a string) ([]string, error) {
	w, err := nrParseSelector(a)
	if err != nil {
		return nil, e.errorf("%v", err)
	}
	if e.src == nil {
		return nil, e.errorf("attribute selector %q needs the cluster's nodes", a)
	}
	nodes, err := e.src.Match(w.Attr, w.Op, w.Value)
	if err != nil {
		return nil, fmt.Errorf("noderange %q: %s: %w", e.expr, a, err)
	}
	return nodes, nil
}

// nrShortname maps xCAT's attribute aliases in selectors to table.column.
func nrShortname(attr string) string {
	switch attr {
	case "groups", "tags":
		return "nodelist.groups"
	case "mgt":
		return "nodehm.mgt"
	}
	return attr
}

// nrParseSelector splits an attribute selector with the precedence of xCAT's
// nodesbycriteria: !=, =~, ==, =, !~. The slashes of /re/ are removed.
func nrParseSelector(a string) (Where, error) {
	var w Where
	eq := strings.IndexByte(a, '=')
	switch {
	case eq > 0 && a[eq-1] == '!':
		w = Where{a[:eq-1], "!=", a[eq+1:]}
	case eq >= 0 && eq+1 < len(a) && a[eq+1] == '~':
		w = Where{a[:eq], "=~", whStripSlashes(a[eq+2:])}
	case strings.Contains(a, "=="):
		k := strings.Index(a, "==")
		w = Where{a[:k], "==", a[k+2:]}
	case eq >= 0:
		w = Where{a[:eq], "==", a[eq+1:]}
	case strings.Contains(a, "!~"):
		k := strings.Index(a, "!~")
		w = Where{a[:k], "!~", whStripSlashes(a[k+2:])}
	default:
		return w, fmt.Errorf("attribute selector %q has no operator (==, !=, =~, !~)", a)
	}
	if w.Attr == "" {
		return w, fmt.Errorf("attribute selector %q names no attribute", a)
	}
	w.Attr = nrShortname(w.Attr)
	if w.Op == "=~" || w.Op == "!~" {
		if _, err := rxCompile(w.Value); err != nil {
			return w, fmt.Errorf("attribute selector %q: %v", a, err)
		}
	}
	return w, nil
}

// regex expands /re: every node whose name matches ^re$ (the text is pasted between the
// anchors as xCAT does, so an alternation a|b is anchored on its outer ends only).
func (e *nrExpander) regex(a string) ([]string, error) {
	re, err := regexp.Compile("^" + rxPerlToRE2(a[1:]) + "$")
	if err != nil {
		return nil, e.errorf("bad regular expression in %q: %v", a, err)
	}
	if e.src == nil {
		return nil, nil
	}
	var nodes []string
	for _, n := range e.src.Nodes() {
		if re.MatchString(n) {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// bracket expands start[content]ending. content is split on "," "-" and ":" and rewritten
// as a plain range on full names: node[01-10] becomes node01-node10. With more bracket
// groups in ending, the first is expanded textually and each result is expanded again
// with the rest appended.
func (e *nrExpander) bracket(a, start, content, ending string, m nrMode) ([]string, error) {
	if n := e.estimate(a, 0); n > e.budget {
		return nil, e.tooLarge(a, n)
	}
	more := nrHasBracket(ending)
	var b strings.Builder
	elems, seps := nrSplitSeps(content)
	for i, el := range elems {
		b.WriteString(start)
		b.WriteString(el)
		if !more {
			b.WriteString(ending)
		}
		if i < len(seps) {
			b.WriteByte(seps[i])
		}
	}
	var nodes []string
	for _, piece := range rxPerlSplit(b.String(), ',') {
		if !more {
			set, err := e.atom(piece, m)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, set...)
			continue
		}
		first, err := e.atom(piece, nrMode{generic: true, inner: true})
		if err != nil {
			return nil, err
		}
		for _, f := range first {
			set, err := e.atom(f+ending, m)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, set...)
		}
	}
	return nodes, nil
}

// estimate returns the number of names a (a bracket, range or +N atom) expands to,
// computed without making them; atoms that are not ranges count as one name. The count
// saturates at math.MaxInt64, which is also the answer past nrMaxDepth levels.
func (e *nrExpander) estimate(a string, depth int) int64 {
	if depth > nrMaxDepth {
		return math.MaxInt64
	}
	start, content, ending, ok := nrBracket(a)
	if !ok {
		var sp nrSpan
		var err error
		switch {
		case strings.IndexByte(a, '+') >= 0:
			sp, err = e.plus(a)
		case strings.ContainsAny(a, "-:"):
			var isRange bool
			sp, isRange, err = nrParseRange(a)
			if !isRange {
				return 1
			}
		default:
			return 1
		}
		if err != nil {
			return 1 // the expansion reports the error
		}
		return sp.count()
	}
	more := nrHasBracket(ending)
	elems, seps := nrSplitSeps(content)
	var b strings.Builder
	for i, el := range elems {
		b.WriteString(start)
		b.WriteString(el)
		if !more {
			b.WriteString(ending)
		}
		if i < len(seps) {
			b.WriteByte(seps[i])
		}
	}
	var firsts int64
	rep := ""
	for _, piece := range rxPerlSplit(b.String(), ',') {
		firsts = nrAddSat(firsts, e.estimate(piece, depth+1))
		if rep == "" {
			rep = piece
			if strings.IndexByte(piece, '+') >= 0 {
				if sp, err := e.plus(piece); err == nil {
					rep = sp.name(sp.lo)
				}
			} else if sp, isRange, err := nrParseRange(piece); isRange && err == nil {
				rep = sp.name(sp.lo)
			}
		}
	}
	if !more {
		return firsts
	}
	// The rest's size does not depend on the prefix, so one representative suffices.
	return nrMulSat(firsts, e.estimate(rep+ending, depth+1))
}

func nrAddSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func nrMulSat(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

func (e *nrExpander) tooLarge(a string, n int64) error {
	used := e.max - e.budget
	if used > 0 {
		return fmt.Errorf("noderange %q: %w: %q adds %d names to %d, limit %d", e.expr, ErrRangeTooLarge, a, n, used, e.max)
	}
	return fmt.Errorf("noderange %q: %w: %q gives %d names, limit %d", e.expr, ErrRangeTooLarge, a, n, e.max)
}

// nrSpan is a run of names pre+number+suf, numbers lo..hi, zero-padded to width when pad
// (a number of 10^width or more is written in full, as Perl's string increment does).
type nrSpan struct {
	pre, suf string
	lo, hi   uint64
	width    int
	pad      bool
}

func (s nrSpan) count() int64 {
	n := s.hi - s.lo + 1
	if n > math.MaxInt64 || n == 0 {
		return math.MaxInt64
	}
	return int64(n)
}

func (s nrSpan) name(v uint64) string {
	return string(s.appendName(nil, v))
}

func (s nrSpan) appendName(b []byte, v uint64) []byte {
	b = append(b, s.pre...)
	if s.pad {
		for n, digits := v, 1; digits < s.width; digits++ {
			if n /= 10; n == 0 {
				b = append(b, '0')
			}
		}
	}
	b = strconv.AppendUint(b, v, 10)
	return append(b, s.suf...)
}

// span expands each name of sp as an atom of its own, after charging its size.
func (e *nrExpander) span(a string, sp nrSpan, m nrMode) ([]string, error) {
	n := sp.count()
	if n > e.budget {
		return nil, e.tooLarge(a, n)
	}
	if !m.inner {
		e.budget -= n
	}
	nodes := make([]string, 0, n)
	lookup := !m.generic && e.src != nil
	// Names without special characters expand to themselves when they are nodes, or in
	// generic mode; only the others go through every atom form.
	plain := !strings.ContainsAny(sp.pre+sp.suf, "()@=~/[]+-:^") && (sp.pre+sp.suf) != ""
	var buf []byte
	for v := sp.lo; ; v++ {
		buf = sp.appendName(buf[:0], v)
		name := string(buf)
		switch {
		case plain && lookup && e.src.IsNode(name):
			nodes = append(nodes, name)
		case plain && !lookup && !m.verify:
			nodes = append(nodes, name)
		default:
			set, err := e.atom(name, m)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, set...)
		}
		if v == sp.hi {
			break
		}
	}
	return nodes, nil
}

// plus parses name+N: from the last number of name (before an optional .domain) up to that
// number plus N, keeping its zero padding; a bare number takes Prefix and Suffix.
func (e *nrExpander) plus(a string) (nrSpan, error) {
	front, inc, _ := strings.Cut(a, "+")
	if !nrAllDigits(inc) {
		return nrSpan{}, e.errorf("%q: the increment after + must be a number", a)
	}
	// ^(.*?)(\d+)(\..+)?$: the number is the first digit run that ends the name or is
	// followed by a dot and at least one more character (a domain, kept as the suffix).
	name, dom := front, ""
	for i := 1; i < len(front)-1; i++ {
		if front[i] == '.' && front[i-1] >= '0' && front[i-1] <= '9' {
			name, dom = front[:i], front[i:]
			break
		}
	}
	j := len(name)
	for j > 0 && name[j-1] >= '0' && name[j-1] <= '9' {
		j--
	}
	if j == len(name) {
		return nrSpan{}, e.errorf("%q: +N needs a name that ends in a number", a)
	}
	pre, startnum := name[:j], name[j:]
	lo, err := strconv.ParseUint(startnum, 10, 64)
	if err != nil {
		return nrSpan{}, e.errorf("%q: number too large", a)
	}
	n, err := strconv.ParseUint(inc, 10, 64)
	if err != nil || lo > math.MaxUint64-n {
		return nrSpan{}, e.errorf("%q: number too large", a)
	}
	if pre == "" && dom == "" {
		pre, dom = e.prefix, e.suffix
	}
	return nrSpan{pre: pre, suf: dom, lo: lo, hi: lo + n, width: len(startnum), pad: startnum[0] == '0'}, nil
}

// rangeAtom expands left-right or left:right.
func (e *nrExpander) rangeAtom(a string, m nrMode) ([]string, error) {
	sp, isRange, err := nrParseRange(a)
	if err != nil {
		return nil, e.errorf("%v", err)
	}
	if !isRange {
		if sp.pre != "" { // left and right are the same name
			return e.atom(sp.pre, m)
		}
		return e.miss(a, m), nil
	}
	return e.span(a, sp, m)
}

// nrParseRange parses a range atom. isRange is false for atoms that are not ranges (an
// even number of "-", sides that do not line up); when both sides are the same name, it
// is returned in sp.pre with isRange false. err reports ranges that line up but cannot run:
// backwards, or with ends that cannot be padded alike.
func nrParseRange(a string) (sp nrSpan, isRange bool, err error) {
	var left, right string
	if i := strings.IndexByte(a, ':'); i >= 0 {
		left = a[:i]
		right = a[i+1:]
		if j := strings.IndexByte(right, ':'); j >= 0 {
			right = right[:j]
		}
	} else {
		dashes := strings.Count(a, "-")
		if dashes%2 == 0 || a == "" || a[0] == '-' {
			return sp, false, nil
		}
		// Split at the middle dash.
		k, n := 0, dashes/2+1
		for i := 0; i < len(a); i++ {
			if a[i] == '-' {
				k++
				if k == n {
					left, right = a[:i], a[i+1:]
					break
				}
			}
		}
	}
	if left == right {
		return nrSpan{pre: left}, false, nil
	}
	l, r := nrSplitDigits(left), nrSplitDigits(right)
	if len(l) != len(r) {
		return sp, false, nil
	}
	for i := range l {
		if l[i] == r[i] {
			continue
		}
		if !nrAllDigits(l[i]) || !nrAllDigits(r[i]) {
			return sp, false, nil
		}
		if strings.Join(l[i+1:], "") != strings.Join(r[i+1:], "") {
			return sp, false, nil
		}
		sp = nrSpan{pre: strings.Join(l[:i], ""), suf: strings.Join(l[i+1:], "")}
		err = nrIterate(&sp, l[i], r[i])
		if err != nil {
			return sp, true, fmt.Errorf("range %q: %v", a, err)
		}
		return sp, true, nil
	}
	return sp, false, nil
}

// nrIterate sets the numbers of sp from the digit strings lo..hi as Perl's ".." runs
// them: numerically when lo has no leading zero, else by string increment, which keeps
// lo's width until the numbers outgrow it.
func nrIterate(sp *nrSpan, lo, hi string) error {
	a, err1 := strconv.ParseUint(lo, 10, 64)
	b, err2 := strconv.ParseUint(hi, 10, 64)
	if err1 != nil || err2 != nil {
		return errors.New("number too large")
	}
	if a > b {
		return fmt.Errorf("runs backwards (%s is after %s)", lo, hi)
	}
	sp.lo, sp.hi = a, b
	if lo[0] != '0' {
		return nil
	}
	sp.pad, sp.width = true, len(lo)
	if len(lo) > len(hi) {
		return fmt.Errorf("start %s is wider than end %s", lo, hi)
	}
	if len(hi) > len(lo) && hi[0] == '0' {
		return fmt.Errorf("end %s is zero-padded wider than start %s", hi, lo)
	}
	return nil
}

// nrSplitDigits is Perl's split(/(\d+)/): text and digit runs alternating, a leading empty
// field kept and trailing empty fields dropped.
func nrSplitDigits(s string) []string {
	var out []string
	from := 0
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		out = append(out, s[from:i], s[i:j])
		from, i = j, j
	}
	out = append(out, s[from:])
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// nrSplitSeps is Perl's split(/([,\-:])/, s): fields and their separators, trailing empty
// fields dropped.
func nrSplitSeps(s string) (elems []string, seps []byte) {
	from := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ',' || c == '-' || c == ':' {
			elems = append(elems, s[from:i])
			seps = append(seps, c)
			from = i + 1
		}
	}
	elems = append(elems, s[from:])
	// Drop trailing empty fields (a separator is never empty, so only the last field).
	if elems[len(elems)-1] == "" && len(elems) > 1 {
		elems = elems[:len(elems)-1]
	} else if elems[len(elems)-1] == "" {
		return nil, nil
	}
	return elems, seps
}

// nrBracket matches (.+?)\[(.+?)\](.*): a non-empty prefix, the first [...] group with
// non-empty content, and the rest.
func nrBracket(a string) (start, content, ending string, ok bool) {
	if len(a) < 4 {
		return "", "", "", false
	}
	i := strings.IndexByte(a[1:], '[') + 1
	if i == 0 || i+2 > len(a) {
		return "", "", "", false
	}
	j := strings.IndexByte(a[i+2:], ']')
	if j < 0 {
		return "", "", "", false
	}
	j += i + 2
	return a[:i], a[i+1 : j], a[j+1:], true
}

// nrCheckBrackets rejects bracket atoms xCAT's rewriting cannot end on: a "[" with no
// prefix before it, and brackets inside brackets.
func nrCheckBrackets(a string) error {
	if a[0] == '[' {
		return fmt.Errorf("%q: a bracket range needs a name before it", a)
	}
	depth := 0
	for i := 0; i < len(a); i++ {
		switch a[i] {
		case '[':
			if depth++; depth > 1 {
				return fmt.Errorf("%q: brackets inside brackets", a)
			}
		case ']':
			depth--
		}
	}
	return nil
}

// nrHasBracket reports whether s contains \[.+?\].
func nrHasBracket(s string) bool {
	i := strings.IndexByte(s, '[')
	return i >= 0 && i+2 <= len(s) && strings.IndexByte(s[i+2:], ']') >= 0
}

func nrAllDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkBalanced rejects unbalanced [] and (), ignoring backslash-escaped characters.
func (e *nrExpander) checkBalanced(s string) error {
	var sq, par int
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			sq++
		case ']':
			if sq--; sq < 0 {
				return e.errorf("unbalanced ] in %q", s)
			}
		case '(':
			par++
		case ')':
			if par--; par < 0 {
				return e.errorf("unbalanced ) in %q", s)
			}
		}
	}
	if sq != 0 {
		return e.errorf("unbalanced [ in %q", s)
	}
	if par != 0 {
		return e.errorf("unbalanced ( in %q", s)
	}
	return nil
}

// nrSplitTop splits s on sep where it is outside the open/close pairs given, returning
// the pieces and the separator before each piece but the first.
func nrSplitTop(s string, sep byte, open, close string) ([]string, []byte) {
	var atoms []string
	var seps []byte
	depth, from := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
		case strings.IndexByte(open, c) >= 0:
			depth++
		case strings.IndexByte(close, c) >= 0:
			depth--
		case c == sep && depth == 0:
			atoms = append(atoms, s[from:i])
			seps = append(seps, c)
			from = i + 1
		}
	}
	atoms = append(atoms, s[from:])
	return atoms, seps
}

// nrGroupStart returns the index of the first "(" that begins an atom (after nothing, ",",
// "@" or an atom's leading "-"), or -1. xCAT takes any "(" as a group, which breaks regular
// expressions such as /d(1.?.?|200) (the example of its own manual); a "(" inside an
// atom is part of that atom here.
func nrGroupStart(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			if i == 0 || s[i-1] == ',' || s[i-1] == '@' ||
				(s[i-1] == '-' && (i == 1 || s[i-2] == ',' || s[i-2] == '@')) {
				return i
			}
		}
	}
	return -1
}

func nrSetOf(names []string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}

func nrIntersect(nodes, with []string) []string {
	keep := nrSetOf(with)
	out := nodes[:0:0]
	for _, n := range nodes {
		if _, ok := keep[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func nrSubtract(nodes []string, del map[string]struct{}) []string {
	out := nodes[:0:0]
	for _, n := range nodes {
		if _, ok := del[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}
