package cluster

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Where is one filter condition: `tabdump -w`, `lsdef -w`, noderange attribute selectors
// and the criteria of dynamic groups (nodegroup.wherevals).
//
// Op is one of "==", "!=", "=~" (Perl regular expression, unanchored), "!~", "<", "<=",
// ">" and ">=" (numeric when both sides are decimal numbers, else byte-wise string order).
//
// Unset attributes: xCAT's noderange selectors compare an unset attribute as the empty
// string (so mgt!=ipmi selects nodes without mgt), which is what Match does; lsdef -w,
// tabdump -w and dynamic groups never select an object whose attribute is unset, which is
// what WhereMatcher.MatchDefined and MatchTabdump do.
type Where struct{ Attr, Op, Value string }

// ErrWhereSyntax is wrapped by the errors of ParseWhere and ParseWherevals.
var ErrWhereSyntax = errors.New("malformed filter")

// ParseWhere parses attr==val, attr!=val, attr=~re, attr!~re, attr<val, attr<=val,
// attr>val, attr>=val, and attr=val (the same as ==, as lsdef takes it). The operator is
// found as xCAT finds it: the attribute name is the text before the first "=" (or before
// the comparison operator), so values may contain any character. One leading and one
// trailing "/" are removed from a regular expression (attr=~/re/).
func ParseWhere(s string) (Where, error) {
	var w Where
	eq := strings.IndexByte(s, '=')
	before := func(c byte) int { // the first c before the first '=' (or anywhere without '=')
		i := strings.IndexByte(s, c)
		if i < 0 || (eq >= 0 && i > eq) {
			return -1
		}
		return i
	}
	notTilde := strings.Index(s, "!~")
	switch {
	case eq >= 0 && eq+1 < len(s) && s[eq+1] == '=':
		w = Where{s[:eq], "==", s[eq+2:]}
	case eq >= 0 && eq+1 < len(s) && s[eq+1] == '~':
		w = Where{s[:eq], "=~", whStripSlashes(s[eq+2:])}
	case eq > 0 && s[eq-1] == '!':
		w = Where{s[:eq-1], "!=", s[eq+1:]}
	case notTilde >= 0 && (eq < 0 || notTilde < eq):
		w = Where{s[:notTilde], "!~", whStripSlashes(s[notTilde+2:])}
	case eq > 0 && s[eq-1] == '<':
		w = Where{s[:eq-1], "<=", s[eq+1:]}
	case before('<') >= 0:
		i := before('<')
		w = Where{s[:i], "<", s[i+1:]}
	case eq > 0 && s[eq-1] == '>':
		w = Where{s[:eq-1], ">=", s[eq+1:]}
	case before('>') >= 0:
		i := before('>')
		w = Where{s[:i], ">", s[i+1:]}
	case eq > 0 && eq+1 < len(s) && strings.IndexByte(s[eq+1:], '=') < 0:
		w = Where{s[:eq], "==", s[eq+1:]}
	default:
		return Where{}, fmt.Errorf("filter %q: no operator (==, !=, =~, !~, <, <=, >, >=): %w", s, ErrWhereSyntax)
	}
	if w.Attr == "" {
		return Where{}, fmt.Errorf("filter %q: no attribute name before %s: %w", s, w.Op, ErrWhereSyntax)
	}
	if _, err := w.compile(); err != nil {
		return Where{}, fmt.Errorf("filter %q: %w", s, err)
	}
	return w, nil
}

// whStripSlashes removes one leading and one trailing "/", as xCAT does for =~ and !~.
func whStripSlashes(v string) string {
	v = strings.TrimPrefix(v, "/")
	return strings.TrimSuffix(v, "/")
}

// String formats w so that ParseWhere gives it back; regular expressions are written
// between slashes.
func (w Where) String() string {
	if w.Op == "=~" || w.Op == "!~" {
		return w.Attr + w.Op + "/" + w.Value + "/"
	}
	return w.Attr + w.Op + w.Value
}

// ParseWherevals parses nodegroup.wherevals: conditions joined by "::", as
// "mgt==hmc::cons==hmc". Empty pieces are skipped. Like xCAT, it splits on every "::", so
// a value cannot contain "::".
func ParseWherevals(s string) ([]Where, error) {
	var out []Where
	for piece := range strings.SplitSeq(s, "::") {
		if piece == "" {
			continue
		}
		w, err := ParseWhere(piece)
		if err != nil {
			return nil, fmt.Errorf("wherevals %q: %w", s, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// Match reports whether value satisfies w; value is compared as it is, "" included. It
// compiles w each time: to test many values, use Compile.
func (w Where) Match(value string) (bool, error) {
	m, err := w.Compile()
	if err != nil {
		return false, err
	}
	return m.Match(value), nil
}

// WhereMatcher is a compiled Where, safe for concurrent use.
type WhereMatcher struct {
	w     Where
	re    *regexp.Regexp // =~ and !~
	like  *regexp.Regexp // =~ and !~ in MatchTabdump when Value holds %
	num   float64        // comparisons: Value as a number
	isNum bool
}

// Compile checks w and prepares it for matching many values.
func (w Where) Compile() (*WhereMatcher, error) {
	m, err := w.compile()
	if err != nil {
		return nil, fmt.Errorf("filter %s: %w", w, err)
	}
	return m, nil
}

func (w Where) compile() (*WhereMatcher, error) {
	m := &WhereMatcher{w: w}
	switch w.Op {
	case "==", "!=":
	case "=~", "!~":
		if strings.Contains(w.Value, "%") {
			m.like = whLike(w.Value)
		}
		re, err := rxCompile(w.Value)
		switch {
		case err == nil:
			m.re = re
		case m.like != nil:
			m.re = m.like // not a regular expression: a LIKE pattern everywhere
		default:
			return nil, fmt.Errorf("%v: %w", err, ErrWhereSyntax)
		}
	case "<", "<=", ">", ">=":
		m.num, m.isNum = whNumber(w.Value)
	default:
		return nil, fmt.Errorf("unknown operator %q: %w", w.Op, ErrWhereSyntax)
	}
	return m, nil
}

// Where returns the condition m was compiled from.
func (m *WhereMatcher) Where() Where { return m.w }

// Match reports whether value satisfies the condition; "" is compared as the empty string
// (the semantics of noderange attribute selectors).
func (m *WhereMatcher) Match(value string) bool {
	switch m.w.Op {
	case "==":
		return value == m.w.Value
	case "!=":
		return value != m.w.Value
	case "=~":
		return m.re.MatchString(value)
	case "!~":
		return !m.re.MatchString(value)
	}
	c := m.compare(value)
	switch m.w.Op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	default:
		return c >= 0
	}
}

// MatchDefined is Match for lsdef -w and dynamic groups: an unset ("") value never matches.
func (m *WhereMatcher) MatchDefined(value string) bool {
	return value != "" && m.Match(value)
}

// MatchTabdump is the filter of tabdump -w. xCAT runs it as SQL: an unset (NULL) column
// matches nothing, and =~ / !~ are SQL LIKE / NOT LIKE. Here =~ takes a Perl regular
// expression as everywhere else, unless Value contains "%": then it is a LIKE pattern as
// in xCAT on SQLite (% any run, _ any one character, ASCII letters case-insensitive, the
// whole value must match).
func (m *WhereMatcher) MatchTabdump(value string) bool {
	if value == "" {
		return false
	}
	if m.like != nil {
		ok := m.like.MatchString(value)
		if m.w.Op == "!~" {
			return !ok
		}
		return ok
	}
	return m.Match(value)
}

func (m *WhereMatcher) compare(value string) int {
	if m.isNum {
		if v, ok := whNumber(value); ok {
			switch {
			case v < m.num:
				return -1
			case v > m.num:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(value, m.w.Value)
}

// whNumber parses a plain decimal number: an optional sign, digits with an optional
// fraction, an optional exponent. Hex, infinities and NaN are not numbers here.
func whNumber(s string) (float64, bool) {
	if s == "" || strings.ContainsAny(s, "xXpP_iInN") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// whLike compiles an SQL LIKE pattern (no ESCAPE) as SQLite runs it: ASCII letters match
// either case.
func whLike(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	for _, r := range p {
		switch {
		case r == '%':
			b.WriteString(`.*`)
		case r == '_':
			b.WriteString(`.`)
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			b.WriteString("[" + string(r|0x20) + string(r&^0x20) + "]")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`\z`)
	return regexp.MustCompile(b.String())
}
