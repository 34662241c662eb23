package cluster

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// rxKind is the form of a regex-valued attribute.
type rxKind uint8

const (
	rxPlain rxKind = iota // not a regex value: returned unchanged
	rxSlash               // /pattern/replacement/
	rxPipe                // |pattern|replacement|
	rxShort               // |replacement|
)

// rxMaxGroups bounds the evaluation loop of one value: each round evaluates one (...) group.
const rxMaxGroups = 256

// IsRegexAttr reports whether value uses one of xCAT's regex forms: /pattern/replacement/
// (exactly three slashes) or a value that starts and ends with |.
func IsRegexAttr(value string) bool { return rxKindOf(value) != rxPlain }

func rxKindOf(v string) rxKind {
	if strings.IndexByte(v, '\n') >= 0 {
		return rxPlain
	}
	n := len(v)
	if n >= 3 && v[0] == '/' && v[n-1] == '/' && strings.Count(v, "/") == 3 {
		return rxSlash
	}
	if n >= 2 && v[0] == '|' && v[n-1] == '|' {
		return rxPipe
	}
	return rxPlain
}

// RegexAttr is a compiled attribute value, ready to be resolved for many nodes. It is
// immutable and safe for concurrent use.
type RegexAttr struct {
	value string
	kind  rxKind
	re    *regexp.Regexp
	repl  string
	// evaluate is false when the replacement has no (...) group: plain substitution.
	evaluate bool
	// exprs holds the parsed groups of the replacement text, by their text.
	exprs map[string]rxParsed
	// segs is the replacement cut at its groups: literal text before each group, and
	// tail after the last one.
	segs []rxSeg
	tail string
}

type rxSeg struct {
	lit   string
	group string
	expr  rxParsed
}

type rxParsed struct {
	node *rxNode
	err  error
}

// CompileRegexAttr parses value once. Values that are not regex forms compile to a
// RegexAttr whose Expand returns them unchanged. The error names the value when its
// pattern is not a regular expression RE2 can run.
func CompileRegexAttr(value string) (*RegexAttr, error) {
	r := &RegexAttr{value: value, kind: rxKindOf(value)}
	switch r.kind {
	case rxPlain:
		return r, nil
	case rxSlash:
		body := value[1 : len(value)-1]
		pat, repl, _ := strings.Cut(body, "/")
		re, err := rxCompile(pat)
		if err != nil {
			return nil, fmt.Errorf("regex attribute %q: %w", value, err)
		}
		r.re, r.repl = re, repl
		return r, nil
	}
	body := value[1 : len(value)-1]
	pat, repl, found := strings.Cut(body, "|")
	if !found {
		r.kind, r.repl = rxShort, body
	} else {
		re, err := rxCompile(pat)
		if err != nil {
			return nil, fmt.Errorf("regex attribute %q: %w", value, err)
		}
		r.re, r.repl = re, repl
	}
	// Parse the groups that the evaluation will meet when no evaluated value contains a
	// parenthesis, which is always the case unless node names contain them.
	rest := r.repl
	for i := 0; i < rxMaxGroups; i++ {
		prev, group, next, ok := rxExtractBracketed(rest)
		if !ok {
			break
		}
		r.evaluate = true
		if r.exprs == nil {
			r.exprs = make(map[string]rxParsed)
		}
		p, seen := r.exprs[group]
		if !seen {
			n, err := rxParse(group)
			p = rxParsed{n, err}
			r.exprs[group] = p
		}
		r.segs = append(r.segs, rxSeg{lit: prev, group: group, expr: p})
		rest = next
	}
	r.tail = rest
	return r, nil
}

// String returns the value r was compiled from.
func (r *RegexAttr) String() string { return r.value }

// Expand resolves r for node. A value that is not a regex form is returned unchanged; ""
// means the attribute is unset for that node.
func (r *RegexAttr) Expand(node string) string { return r.expand(node, true) }

// expand resolves r; fast allows the one-pass evaluation (tests compare both ways).
func (r *RegexAttr) expand(node string, fast bool) string {
	switch r.kind {
	case rxPlain:
		return r.value
	case rxSlash:
		loc := r.re.FindStringIndex(node)
		if loc == nil {
			return node
		}
		return node[:loc[0]] + r.repl + node[loc[1]:]
	}
	var capsBuf [8]rxCapture
	var caps []rxCapture
	start, end := 0, len(node)
	if r.kind == rxShort {
		caps = rxShortCaptures(node)
	} else {
		loc := r.re.FindStringSubmatchIndex(node)
		if loc == nil {
			return node
		}
		start, end = loc[0], loc[1]
		if n := len(loc) / 2; n <= len(capsBuf) {
			caps = capsBuf[:n]
		} else {
			caps = make([]rxCapture, n)
		}
		for i := range caps {
			if loc[2*i] >= 0 {
				caps[i] = rxCapture{s: node[loc[2*i]:loc[2*i+1]], ok: true}
			}
		}
	}
	if !r.evaluate {
		return node[:start] + r.repl + node[end:]
	}
	pre, post := node[:start], node[end:]
	if fast && pre == "" && post == "" {
		// xCAT rescans the replacement after each group; as long as no value holds a
		// parenthesis, that meets the groups found at compile time, in order.
		var b strings.Builder
		b.Grow(len(r.repl) + 16)
		fast := true
		for _, sg := range r.segs {
			b.WriteString(sg.lit)
			v := ""
			if sg.expr.err == nil {
				if val, err := sg.expr.node.eval(caps); err == nil {
					v = val.str()
				}
			}
			if strings.ContainsAny(v, "()") {
				fast = false
				break
			}
			b.WriteString(v)
		}
		if fast {
			b.WriteString(r.tail)
			return b.String()
		}
	}
	ret := r.repl
	for i := 0; i < rxMaxGroups; i++ {
		prev, group, next, ok := rxExtractBracketed(ret)
		if !ok {
			break
		}
		ret = prev + r.eval(pre+group+post, pre == "" && post == "", caps) + next
	}
	return pre + ret + post
}

// eval evaluates one group; errors give "" as Perl's reval gives undef.
func (r *RegexAttr) eval(expr string, cacheable bool, caps []rxCapture) string {
	var n *rxNode
	if p, ok := r.exprs[expr]; cacheable && ok {
		if p.err != nil {
			return ""
		}
		n = p.node
	} else {
		var err error
		if n, err = rxParse(expr); err != nil {
			return ""
		}
	}
	v, err := n.eval(caps)
	if err != nil {
		return ""
	}
	return v.str()
}

// ExpandRegexAttr resolves value for node as xCAT's Table.pm (transRegexAttrs) does; values
// that are not regex forms come back unchanged and "" means unset. It compiles value on
// every call: to resolve one value for many nodes, use CompileRegexAttr or a RegexCache.
//
// A value of a group row may compute each member's value from the member's name:
//
//	/pattern/replacement/        Perl s/pattern/replacement/ applied once to the node name
//	|pattern|replacement|        the same, after evaluating each (...) group of replacement
//	|replacement|                short form: pattern is [\D0]*(\d+) once per number in the name
//
// In the | forms every top-level balanced (...) group of the replacement, leftmost first, is
// evaluated as Perl integer arithmetic ("use integer") while $1, $2, ... hold the captures of
// the pattern matched against the node name, and the group is replaced by the result. Captures
// are decimal strings: a lone ($1) keeps leading zeros, arithmetic drops them (never octal).
// The evaluated replacement then replaces the part of the node name the pattern matched; the
// unmatched rest of the name survives, and a name the pattern does not match is returned as
// it is. The replacement text itself is literal, as in xCAT: "$1" outside parentheses is not
// expanded (Perl interpolates the variable holding the replacement only once).
//
// Inside a group: numbers in Perl's syntax (decimal, 0x hex, 0b binary, leading-zero octal,
// _ separators, 1.5, .5, 10., 1e3, and v-strings such as 65.66.67), 'single' and "double"
// quoted strings ("$1" interpolates), $N and ${N}, barewords (strings, as in Perl without
// strict: text of the node name outside the match becomes part of the expression), unary -
// (string negation included) and +, * / % (integer: / truncates toward zero, % takes the
// sign of the dividend), + - and the string concatenation ".", the comma operator (the last
// value counts; lists flatten into function arguments) and xCAT's helper functions mknum,
// a2idx, a2zidx, dim2idx, skip and ipadd (dim2idx and skip compute in floating point, as
// they run outside "use integer" in xCAT). Anything else (comparison, **, the .. range
// operator, ++/--, other functions) is an evaluation error, as is a division by zero; an
// evaluation error turns that group into an empty string, as xCAT's Safe->reval does; an
// empty final result means the attribute is unset. This was checked against xCAT's
// transRegexAttrs run by Perl 5.36 on 26,000 generated values: all agree but those using
// the .. operator.
//
// Patterns are Perl regular expressions run by Go's RE2 engine: \Z, \h, \H, \v and \e are
// translated; features RE2 cannot express (backreferences, lookaround, possessive or atomic
// groups) are reported as errors when the value is compiled.
func ExpandRegexAttr(value, node string) (string, error) {
	if rxKindOf(value) == rxPlain {
		return value, nil
	}
	r, err := CompileRegexAttr(value)
	if err != nil {
		return "", err
	}
	return r.Expand(node), nil
}

// ExpandNicsAttr resolves a nics-table value such as
// "ib0!|node(\d+)|10.0.0.($1+20)|,eth1!10.1.0.5" for node: the value is split into
// comma-separated entries, each entry into the nic name and its value at the first "!" (or,
// without "!", at the first ":"), and a value of the form |...| with no white space is
// resolved as a regex attribute. Entries are joined back in their order with their
// separators; an entry whose regex yields nothing keeps its "nic!" prefix with an empty value.
//
// Unlike xCAT, commas inside parentheses do not split entries, so helper calls such as
// (ipadd(10,0,0,0,$1,1,1)) work in nics values; and only the first "!" separates, so
// the value may contain "!".
func ExpandNicsAttr(value, node string) (string, error) {
	return rxExpandNics(value, node, func(v string) (*RegexAttr, error) { return CompileRegexAttr(v) })
}

func rxExpandNics(value, node string, compile func(string) (*RegexAttr, error)) (string, error) {
	if !strings.Contains(value, "|") {
		return value, nil
	}
	entries := rxSplitNics(value)
	for i, ent := range entries {
		sep := strings.IndexByte(ent, '!')
		if sep < 0 {
			sep = strings.IndexByte(ent, ':')
		}
		if sep < 0 {
			continue
		}
		v := ent[sep+1:]
		if len(v) < 2 || v[0] != '|' || v[len(v)-1] != '|' || strings.IndexFunc(v, rxIsSpace) >= 0 {
			continue
		}
		r, err := compile(v)
		if err != nil {
			return "", fmt.Errorf("nic %s: %w", ent[:sep], err)
		}
		entries[i] = ent[:sep+1] + r.Expand(node)
	}
	return strings.Join(entries, ","), nil
}

// rxSplitNics splits on commas outside parentheses.
func rxSplitNics(v string) []string {
	var out []string
	depth, from := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				out = append(out, v[from:i])
				from = i + 1
			}
		}
	}
	return append(out, v[from:])
}

// rxIsSpace is Perl's \s on bytes.
func rxIsSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}

// RegexCache compiles each distinct value once and keeps it for later calls, so that
// resolving one group value for 10,000 nodes parses it once. The zero value is ready to use
// and it is safe for concurrent use. It holds at most 4096 values and starts afresh when full.
type RegexCache struct {
	mu sync.Mutex
	m  map[string]rxCacheEntry
}

type rxCacheEntry struct {
	r   *RegexAttr
	err error
}

const rxCacheMax = 4096

// Compile returns the compiled form of value, from the cache when it was seen before.
func (c *RegexCache) Compile(value string) (*RegexAttr, error) {
	c.mu.Lock()
	e, ok := c.m[value]
	c.mu.Unlock()
	if ok {
		return e.r, e.err
	}
	r, err := CompileRegexAttr(value)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= rxCacheMax {
		c.m = make(map[string]rxCacheEntry)
	}
	c.m[value] = rxCacheEntry{r, err}
	c.mu.Unlock()
	return r, err
}

// Expand is ExpandRegexAttr with compiled values cached.
func (c *RegexCache) Expand(value, node string) (string, error) {
	if rxKindOf(value) == rxPlain {
		return value, nil
	}
	r, err := c.Compile(value)
	if err != nil {
		return "", err
	}
	return r.Expand(node), nil
}

// ExpandNics is ExpandNicsAttr with compiled values cached.
func (c *RegexCache) ExpandNics(value, node string) (string, error) {
	return rxExpandNics(value, node, c.Compile)
}

// rxShortCaptures returns the captures of the short form's generated pattern
// ([\D0]*(\d+) once per match of it in node, then .*$), which always matches the whole
// name: the numbers of the name, each without the leading zeros [\D0]* swallowed.
func rxShortCaptures(node string) []rxCapture {
	caps := []rxCapture{{s: node, ok: true}}
	i := 0
	for i < len(node) {
		j := i
		for j < len(node) && (node[j] < '1' || node[j] > '9') {
			j++
		}
		// [\D0]* stopped at a digit 1-9 or at the end; at the end it gives back one
		// trailing zero, if any, for (\d+).
		if j == len(node) {
			if j > i && node[j-1] == '0' {
				caps = append(caps, rxCapture{s: "0", ok: true})
			}
			break
		}
		k := j
		for k < len(node) && node[k] >= '0' && node[k] <= '9' {
			k++
		}
		caps = append(caps, rxCapture{s: node[j:k], ok: true})
		i = k
	}
	return caps
}

// rxExtractBracketed finds the first balanced (...) group in s the way Text::Balanced's
// extract_bracketed($s, '()', qr/[^()]*/) does: the prefix before it may hold no
// parenthesis, and a backslash inside the group escapes the next character. group includes
// its parentheses.
func rxExtractBracketed(s string) (prev, group, next string, ok bool) {
	i := strings.IndexAny(s, "()")
	if i < 0 || s[i] != '(' {
		return "", "", "", false
	}
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return s[:i], s[i : j+1], s[j+1:], true
			}
		}
	}
	return "", "", "", false
}

// rxCompile compiles a Perl pattern with RE2.
func rxCompile(pat string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(rxPerlToRE2(pat))
	if err != nil {
		return nil, fmt.Errorf("pattern %q is not a regular expression RE2 can run: %w", pat, err)
	}
	return re, nil
}

// rxPerlToRE2 rewrites the Perl escapes RE2 spells differently or lacks: \Z (end, taken as
// \z), \h and \H (horizontal space), \v (vertical space; a vertical tab in RE2) and \e.
// Everything else is passed through, and RE2 rejects what it cannot do.
func rxPerlToRE2(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			i++
			d := p[i]
			switch d {
			case 'Z':
				if inClass {
					b.WriteString(`Z`)
				} else {
					b.WriteString(`\z`)
				}
			case 'h':
				b.WriteString(rxClass(inClass, false, `\t \x{A0}`))
			case 'H':
				b.WriteString(rxClass(inClass, true, `\t \x{A0}`))
			case 'v':
				b.WriteString(rxClass(inClass, false, `\n\x0B\f\r\x{85}`))
			case 'e':
				b.WriteString(`\x1B`)
			default:
				b.WriteByte('\\')
				b.WriteByte(d)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ] right after [ or [^ is a literal in both dialects.
			if i+1 < len(p) && p[i+1] == '^' {
				i++
				b.WriteByte('^')
			}
			if i+1 < len(p) && p[i+1] == ']' {
				i++
				b.WriteByte(']')
			}
		case c == '[' && inClass && i+1 < len(p) && p[i+1] == ':':
			// POSIX class [:alpha:] inside a class.
			if end := strings.Index(p[i:], ":]"); end > 0 {
				b.WriteString(p[i : i+end+2])
				i += end + 1
			} else {
				b.WriteByte(c)
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func rxClass(inClass, negate bool, members string) string {
	if inClass {
		if negate {
			// A negated class cannot be spliced into another class; leave it to RE2,
			// which rejects \H.
			return `\H`
		}
		return members
	}
	if negate {
		return "[^" + members + "]"
	}
	return "[" + members + "]"
}

// The arithmetic of | replacements.

type rxCapture struct {
	s  string
	ok bool
}

// rxVal is a Perl scalar: a string, an integer or undef.
type rxVal struct {
	s     string
	n     int64
	num   bool
	undef bool
}

func (v rxVal) str() string {
	if v.num {
		return strconv.FormatInt(v.n, 10)
	}
	return v.s
}

func (v rxVal) int() int64 {
	if v.num {
		return v.n
	}
	return rxNumify(v.s)
}

func rxInt(n int64) rxVal { return rxVal{n: n, num: true} }

// rxFloat is a Perl floating-point result: an integer when it is one, else printed with
// Perl's %.15g.
func rxFloat(f float64) rxVal {
	if f == math.Trunc(f) && f > -1e15 && f < 1e15 {
		return rxInt(int64(f))
	}
	return rxVal{s: strconv.FormatFloat(f, 'g', 15, 64)}
}

func (v rxVal) float() float64 {
	if v.num {
		return float64(v.n)
	}
	return rxNumifyFloat(v.s)
}

// rxNumifyFloat converts a string as Perl does outside "use integer".
func rxNumifyFloat(s string) float64 {
	t := strings.TrimLeftFunc(s, rxIsSpace)
	end := rxNumberPrefix(t)
	if end == 0 {
		return 0
	}
	f, _ := strconv.ParseFloat(t[:end], 64)
	return f
}

// rxNumberPrefix returns the length of the longest decimal number at the start of s:
// [+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?
func rxNumberPrefix(s string) int {
	j := 0
	if j < len(s) && (s[j] == '+' || s[j] == '-') {
		j++
	}
	d0 := j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	intDigits := j > d0
	if j < len(s) && s[j] == '.' {
		k := j + 1
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if intDigits || k > j+1 {
			j = k
			intDigits = true
		}
	}
	if !intDigits {
		return 0
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && s[k] >= '0' && s[k] <= '9' {
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			j = k
		}
	}
	return j
}

// rxNumify converts a string the way Perl does under "use integer": leading white space,
// an optional sign and the longest decimal number prefix, truncated toward zero; 0 when
// there is none.
func rxNumify(s string) int64 {
	i := 0
	for i < len(s) && rxIsSpace(rune(s[i])) {
		i++
	}
	j := i
	if j < len(s) && (s[j] == '+' || s[j] == '-') {
		j++
	}
	digits := j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	intEnd := j
	frac := false
	if j < len(s) && s[j] == '.' {
		k := j + 1
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j+1 || intEnd > digits {
			frac, j = true, k
		}
	}
	if intEnd == digits && !frac {
		return 0
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && s[k] >= '0' && s[k] <= '9' {
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			frac, j = true, k
		}
	}
	if !frac {
		n, err := strconv.ParseInt(s[i:intEnd], 10, 64)
		if err != nil {
			if s[i] == '-' {
				return math.MinInt64
			}
			return math.MaxInt64
		}
		return n
	}
	f, _ := strconv.ParseFloat(s[i:j], 64)
	return rxClampFloat(f)
}

func rxClampFloat(f float64) int64 {
	switch {
	case f != f:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

var errRxEval = errors.New("evaluation error")

type rxNode struct {
	op   byte // 'l' literal, 'v' capture, 'q' interpolated string, 'f' call, 'u' unary, 'b' binary, ','
	lit  rxVal
	idx  int
	name string
	// parts of an interpolated string: literal text, or a capture index when text is "".
	parts []rxPart
	x, y  *rxNode
	args  []*rxNode
	bin   byte
}

type rxPart struct {
	text string
	idx  int
}

func (n *rxNode) eval(caps []rxCapture) (rxVal, error) {
	switch n.op {
	case 'l':
		return n.lit, nil
	case 'v':
		if n.idx < len(caps) && caps[n.idx].ok {
			return rxVal{s: caps[n.idx].s}, nil
		}
		return rxVal{undef: true}, nil
	case 'q':
		var b strings.Builder
		for _, p := range n.parts {
			if p.idx > 0 {
				if p.idx < len(caps) {
					b.WriteString(caps[p.idx].s)
				}
				continue
			}
			b.WriteString(p.text)
		}
		return rxVal{s: b.String()}, nil
	case ',':
		var last rxVal
		for _, a := range n.args {
			v, err := a.eval(caps)
			if err != nil {
				return rxVal{}, err
			}
			last = v
		}
		return last, nil
	case 'u':
		v, err := n.x.eval(caps)
		if err != nil {
			return rxVal{}, err
		}
		if n.bin == '+' {
			return v, nil
		}
		return rxNegate(v), nil
	case 'b':
		a, err := n.x.eval(caps)
		if err != nil {
			return rxVal{}, err
		}
		b, err := n.y.eval(caps)
		if err != nil {
			return rxVal{}, err
		}
		switch n.bin {
		case '.':
			return rxVal{s: a.str() + b.str()}, nil
		case '+':
			return rxInt(a.int() + b.int()), nil
		case '-':
			return rxInt(a.int() - b.int()), nil
		case '*':
			return rxInt(a.int() * b.int()), nil
		case '/':
			d := b.int()
			if d == 0 {
				return rxVal{}, errRxEval
			}
			return rxInt(a.int() / d), nil
		case '%':
			d := b.int()
			if d == 0 {
				return rxVal{}, errRxEval
			}
			return rxInt(a.int() % d), nil
		}
	case 'f':
		args := make([]rxVal, len(n.args))
		for i, a := range n.args {
			v, err := a.eval(caps)
			if err != nil {
				return rxVal{}, err
			}
			args[i] = v
		}
		return rxCall(n.name, args)
	}
	return rxVal{}, errRxEval
}

// rxNegate is Perl's unary minus, string negation included: -"abc" is "-abc".
func rxNegate(v rxVal) rxVal {
	if !v.num && v.s != "" {
		c := v.s[0]
		switch {
		case c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			return rxVal{s: "-" + v.s}
		case c == '+':
			return rxVal{s: "-" + v.s[1:]}
		case c == '-' && !rxLooksLikeNumber(v.s):
			return rxVal{s: "+" + v.s[1:]}
		}
	}
	return rxInt(-v.int())
}

func rxLooksLikeNumber(s string) bool {
	t := strings.TrimLeftFunc(s, rxIsSpace)
	t = strings.TrimRight(t, "\n")
	_, err := strconv.ParseFloat(t, 64)
	return err == nil && !strings.ContainsAny(t, "xXpP_")
}

// rxCall runs one of xCAT's helper functions (Table.pm).
func rxCall(name string, args []rxVal) (rxVal, error) {
	arg := func(i int) rxVal {
		if i < len(args) {
			return args[i]
		}
		return rxVal{undef: true}
	}
	switch name {
	case "mknum": // the sum of the bytes of the string
		var sum int64
		for _, c := range []byte(arg(0).str()) {
			sum += int64(c)
		}
		return rxInt(sum), nil
	case "a2idx", "a2zidx": // a letter's index, from 1 (a2idx) or 0 (a2zidx)
		s := arg(0).str()
		var c int64
		if s != "" {
			c = int64(s[0])
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
		}
		if name == "a2idx" {
			return rxInt(c - 96), nil
		}
		return rxInt(c - 97), nil
	case "dim2idx": // dim2idx(v1, n2, v2, n3, v3, ...): 1-based index over dimensions
		// Table.pm's helpers other than ipadd run without "use integer".
		var val float64
		mul := false
		for _, a := range args {
			if a.undef {
				break
			}
			if mul {
				val *= a.float()
			} else {
				val += a.float() - 1
			}
			mul = !mul
		}
		return rxFloat(val + 1), nil
	case "skip": // skip(index, "start[:count],..."): the index with ranges left out, or -1
		idx := arg(0).float()
		val, changed := idx, false
		for _, el := range rxPerlSplit(arg(1).str(), ',') {
			parts := rxPerlSplit(el, ':')
			var start, count float64 = 0, 1
			if len(parts) > 0 {
				start = rxNumifyFloat(parts[0])
			}
			if len(parts) > 1 {
				count = rxNumifyFloat(parts[1])
			}
			if idx < start {
				break
			}
			if idx < start+count {
				return rxInt(-1), nil
			}
			val -= count
			changed = true
		}
		if !changed {
			return arg(0), nil // Perl returns the argument itself, string and all
		}
		return rxFloat(val), nil
	case "ipadd": // ipadd(b1,b2,b3,b4, add, skipstart, skipend): an IPv4 address plus add
		b3, b4 := arg(2).int(), arg(3).int()
		toadd, skipstart, skipend := arg(4).int(), arg(5).int(), arg(6).int()
		var offset int64
		if b4 >= skipstart {
			offset = b4 - skipstart
		}
		span := 256 - skipstart - skipend
		if span == 0 {
			return rxVal{}, errRxEval
		}
		b3 += (offset + toadd) / span
		b4 = (offset+toadd)%span + skipstart
		return rxVal{s: arg(0).str() + "." + arg(1).str() + "." + strconv.FormatInt(b3, 10) + "." + strconv.FormatInt(b4, 10)}, nil
	}
	return rxVal{}, errRxEval
}

// rxPerlSplit is Perl's split on a single character: trailing empty fields are dropped.
func rxPerlSplit(s string, sep byte) []string {
	f := strings.Split(s, string(sep))
	for len(f) > 0 && f[len(f)-1] == "" {
		f = f[:len(f)-1]
	}
	return f
}

// rxPerlWord reports words Perl reads as operators or quote-like constructs, never as
// barewords.
func rxPerlWord(w string) bool {
	switch w {
	case "q", "qq", "qw", "qr", "qx", "m", "s", "y", "tr", "x", "lt", "gt", "le", "ge", "eq", "ne",
		"cmp", "and", "or", "not", "xor":
		return true
	}
	return false
}

// rxParse parses one evaluated group.
func rxParse(s string) (*rxNode, error) {
	p := &rxParser{s: s}
	n, err := p.comma()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q in %q", p.s[p.i:], s)
	}
	return n, nil
}

type rxParser struct {
	s string
	i int
}

func (p *rxParser) space() {
	for p.i < len(p.s) && rxIsSpace(rune(p.s[p.i])) {
		p.i++
	}
}

func (p *rxParser) peek() byte {
	p.space()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// doubled reports ++ or --, which Perl reads as increment/decrement (an error here).
func (p *rxParser) doubled() bool {
	return p.i+1 < len(p.s) && p.s[p.i+1] == p.s[p.i]
}

func (p *rxParser) comma() (*rxNode, error) {
	first, err := p.additive()
	if err != nil {
		return nil, err
	}
	if p.peek() != ',' {
		return first, nil
	}
	n := &rxNode{op: ',', args: []*rxNode{first}}
	for p.peek() == ',' {
		p.i++
		if c := p.peek(); c == ')' || c == 0 {
			break // a trailing comma is allowed in Perl lists
		}
		a, err := p.additive()
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, a)
	}
	return n, nil
}

func (p *rxParser) additive() (*rxNode, error) {
	x, err := p.multiplicative()
	if err != nil {
		return nil, err
	}
	for {
		c := p.peek()
		if c != '+' && c != '-' && c != '.' {
			return x, nil
		}
		if p.doubled() {
			return nil, errRxEval // ++, -- and the range operator ..
		}
		p.i++
		y, err := p.multiplicative()
		if err != nil {
			return nil, err
		}
		x = &rxNode{op: 'b', bin: c, x: x, y: y}
	}
}

func (p *rxParser) multiplicative() (*rxNode, error) {
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		c := p.peek()
		if c != '*' && c != '/' && c != '%' {
			return x, nil
		}
		if c == '*' && p.doubled() {
			return nil, errRxEval // ** is not supported
		}
		p.i++
		y, err := p.unary()
		if err != nil {
			return nil, err
		}
		x = &rxNode{op: 'b', bin: c, x: x, y: y}
	}
}

func (p *rxParser) unary() (*rxNode, error) {
	c := p.peek()
	if c == '-' || c == '+' {
		if p.doubled() {
			return nil, errRxEval
		}
		p.i++
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &rxNode{op: 'u', bin: c, x: x}, nil
	}
	return p.primary()
}

func (p *rxParser) primary() (*rxNode, error) {
	c := p.peek()
	switch {
	case c == '(':
		p.i++
		if p.peek() == ')' {
			p.i++
			return &rxNode{op: 'l', lit: rxVal{undef: true}}, nil
		}
		n, err := p.comma()
		if err != nil {
			return nil, err
		}
		if p.peek() != ')' {
			return nil, errRxEval
		}
		p.i++
		return n, nil
	case c >= '0' && c <= '9', c == '.' && p.i+1 < len(p.s) && p.s[p.i+1] >= '0' && p.s[p.i+1] <= '9':
		return p.number()
	case c == '$':
		idx, err := p.variable()
		if err != nil {
			return nil, err
		}
		return &rxNode{op: 'v', idx: idx}, nil
	case c == '\'':
		return p.single()
	case c == '"':
		return p.double()
	case c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z'):
		start := p.i
		for p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i]|0x20 >= 'a' && p.s[p.i]|0x20 <= 'z' || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
			p.i++
		}
		name := p.s[start:p.i]
		if p.peek() != '(' {
			// A bareword is a string, as in Perl without strict; it comes from the part of
			// the node name the pattern did not match ("node-(1+1)" is "node" - 2).
			if rxPerlWord(name) {
				return nil, errRxEval
			}
			return &rxNode{op: 'l', lit: rxVal{s: name}}, nil
		}
		p.i++
		n := &rxNode{op: 'f', name: name}
		for p.peek() != ')' {
			if p.peek() == 0 {
				return nil, errRxEval
			}
			a, err := p.additive()
			if err != nil {
				return nil, err
			}
			n.args = append(n.args, rxFlatten(a)...)
			if p.peek() == ',' {
				p.i++
			} else if p.peek() != ')' {
				return nil, errRxEval
			}
		}
		p.i++
		return n, nil
	}
	return nil, errRxEval
}

// rxFlatten is Perl's list flattening of a function argument: f(1,(2,3)) passes three.
func rxFlatten(n *rxNode) []*rxNode {
	if n.op != ',' {
		return []*rxNode{n}
	}
	var out []*rxNode
	for _, a := range n.args {
		out = append(out, rxFlatten(a)...)
	}
	return out
}

// variable reads $N or ${N}.
func (p *rxParser) variable() (int, error) {
	p.i++ // $
	brace := p.i < len(p.s) && p.s[p.i] == '{'
	if brace {
		p.i++
	}
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == start {
		return 0, errRxEval
	}
	idx, err := strconv.Atoi(p.s[start:p.i])
	if err != nil || idx == 0 || idx > 1000 {
		return 0, errRxEval
	}
	if brace {
		if p.i >= len(p.s) || p.s[p.i] != '}' {
			return 0, errRxEval
		}
		p.i++
	}
	return idx, nil
}

func (p *rxParser) number() (*rxNode, error) {
	s := p.s
	start := p.i
	isDigit := func(c byte, base int) bool {
		switch base {
		case 16:
			return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f' || c == '_'
		case 2:
			return c == '0' || c == '1' || c == '_'
		}
		return c >= '0' && c <= '9' || c == '_'
	}
	base := 10
	if s[p.i] == '0' && p.i+1 < len(s) && s[p.i+1] != '.' {
		switch s[p.i+1] | 0x20 {
		case 'x':
			base, p.i = 16, p.i+2
		case 'b':
			base, p.i = 2, p.i+2
		default:
			if s[p.i+1] >= '0' && s[p.i+1] <= '9' || s[p.i+1] == '_' {
				base = 8
			}
		}
	}
	digStart := p.i
	for p.i < len(s) && isDigit(s[p.i], base) {
		p.i++
	}
	digits := strings.ReplaceAll(s[digStart:p.i], "_", "")
	if base != 10 {
		if digits == "" {
			return nil, errRxEval
		}
		n, err := strconv.ParseInt(digits, base, 64)
		if err != nil {
			return nil, errRxEval // 08 is an illegal octal digit in Perl too
		}
		return &rxNode{op: 'l', lit: rxInt(n)}, nil
	}
	float := false
	// Perl reads "10." as a number (so "10.$1" is a syntax error and "14.-1" is 13);
	// ".." is the range operator, not a decimal point.
	if p.i < len(s) && s[p.i] == '.' && (p.i+1 >= len(s) || s[p.i+1] != '.') {
		float = true
		p.i++
		for p.i < len(s) && isDigit(s[p.i], 10) {
			p.i++
		}
		if p.i+1 < len(s) && s[p.i] == '.' && s[p.i+1] >= '0' && s[p.i+1] <= '9' {
			return p.vstring(start)
		}
	}
	if p.i < len(s) && s[p.i]|0x20 == 'e' {
		k := p.i + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && s[k] >= '0' && s[k] <= '9' {
			float = true
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			p.i = k
		}
	}
	text := strings.ReplaceAll(s[start:p.i], "_", "")
	if !float {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return &rxNode{op: 'l', lit: rxInt(n)}, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return nil, errRxEval
	}
	// Perl prints a numeric literal with %.15g; arithmetic truncates it.
	return &rxNode{op: 'l', lit: rxVal{s: strconv.FormatFloat(f, 'g', 15, 64)}}, nil
}

// vstring reads a Perl v-string literal such as 1.2.3: the characters with those codes.
func (p *rxParser) vstring(start int) (*rxNode, error) {
	for p.i+1 < len(p.s) && p.s[p.i] == '.' && p.s[p.i+1] >= '0' && p.s[p.i+1] <= '9' {
		p.i++
		for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '_') {
			p.i++
		}
	}
	var codes []rune
	wide := false
	for i, part := range strings.Split(p.s[start:p.i], ".") {
		if part == "" && i == 0 {
			part = "0" // Perl reads .5.7 as 0.5.7
		}
		n, err := strconv.ParseUint(strings.ReplaceAll(part, "_", ""), 10, 31)
		if err != nil || n > 0x10FFFF {
			return nil, errRxEval
		}
		wide = wide || n > 0xFF
		codes = append(codes, rune(n))
	}
	// Characters below 256 are bytes, as in a Perl byte string.
	var b []byte
	for _, c := range codes {
		if wide {
			b = utf8.AppendRune(b, c)
		} else {
			b = append(b, byte(c))
		}
	}
	return &rxNode{op: 'l', lit: rxVal{s: string(b)}}, nil
}

func (p *rxParser) single() (*rxNode, error) {
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '\\' && p.i+1 < len(p.s) && (p.s[p.i+1] == '\\' || p.s[p.i+1] == '\''):
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case c == '\'':
			p.i++
			return &rxNode{op: 'l', lit: rxVal{s: b.String()}}, nil
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return nil, errRxEval
}

func (p *rxParser) double() (*rxNode, error) {
	p.i++
	n := &rxNode{op: 'q'}
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			n.parts = append(n.parts, rxPart{text: b.String()})
			b.Reset()
		}
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 >= len(p.s) {
				return nil, errRxEval
			}
			d := p.s[p.i+1]
			switch d {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(d)
			}
			p.i += 2
		case '$':
			flush()
			idx, err := p.variable()
			if err != nil {
				return nil, err
			}
			n.parts = append(n.parts, rxPart{idx: idx})
		case '"':
			p.i++
			flush()
			return n, nil
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return nil, errRxEval
}
