package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseWhere(t *testing.T) {
	tests := []struct {
		in   string
		want Where
	}{
		{"mgt==ipmi", Where{"mgt", "==", "ipmi"}},
		{"nodehm.mgt!=ipmi", Where{"nodehm.mgt", "!=", "ipmi"}},
		{"os=~rhel", Where{"os", "=~", "rhel"}},
		{"os=~/^rhel.*8$/", Where{"os", "=~", "^rhel.*8$"}},
		{"os!~/sles/", Where{"os", "!~", "sles"}},
		{"os!~sles", Where{"os", "!~", "sles"}},
		{"statustime<2024", Where{"statustime", "<", "2024"}},
		{"cpucount<=8", Where{"cpucount", "<=", "8"}},
		{"cpucount>8", Where{"cpucount", ">", "8"}},
		{"cpucount>=8", Where{"cpucount", ">=", "8"}},
		{"mgt=ipmi", Where{"mgt", "==", "ipmi"}},
		{"groups==", Where{"groups", "==", ""}},
		{"comments!=", Where{"comments", "!=", ""}},
		{"value==a==b", Where{"value", "==", "a==b"}},
		{"value==x!=y", Where{"value", "==", "x!=y"}},
		{"value=~a=b", Where{"value", "=~", "a=b"}},
		{"value!=a=b", Where{"value", "!=", "a=b"}},
		{"a<b=c", Where{"a", "<", "b=c"}},
		{"a=b<c", Where{"a", "==", "b<c"}},
		{"a>b<c", Where{"a>b", "<", "c"}},
		{"a!~b==c", Where{"a!~b", "==", "c"}},
		{"ip=~//10.0//", Where{"ip", "=~", "/10.0/"}},
		{"note==  spaced  ", Where{"note", "==", "  spaced  "}},
		{"tabdump=~%comp%", Where{"tabdump", "=~", "%comp%"}},
		{"like=~%(%", Where{"like", "=~", "%(%"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWhere(tt.in)
			if err != nil {
				t.Fatalf("ParseWhere(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseWhere(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			back, err := ParseWhere(got.String())
			if err != nil || back != got {
				t.Errorf("ParseWhere(%q.String() = %q) = %v, %v; want %v", tt.in, got.String(), back, err, got)
			}
		})
	}
}

func TestParseWhereErrors(t *testing.T) {
	for _, in := range []string{"", "mgt", "mgt=", "a=b=c", "==x", "=~x", "<5", "!=x", "os=~(", `os!~a\1`} {
		_, err := ParseWhere(in)
		if !errors.Is(err, ErrWhereSyntax) {
			t.Errorf("ParseWhere(%q) error = %v, want ErrWhereSyntax", in, err)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) && !strings.Contains(err.Error(), in) {
			t.Errorf("ParseWhere(%q) error %q does not name the input", in, err)
		}
	}
}

func TestWhereMatch(t *testing.T) {
	tests := []struct {
		where, value string
		want         bool
	}{
		{"mgt==ipmi", "ipmi", true},
		{"mgt==ipmi", "IPMI", false},
		{"mgt==ipmi", "", false},
		{"mgt==", "", true},
		{"mgt!=ipmi", "hmc", true},
		{"mgt!=ipmi", "", true}, // noderange selectors: unset compares as ""
		{"mgt!=ipmi", "ipmi", false},
		{"os=~rhel", "rhels8.6", true},
		{"os=~^rhel", "xrhel", false},
		{"os=~/^rhel/", "rhels8.6", true},
		{`os=~\d\z`, "rhels8", true},
		{"os=~(?i)RHEL", "rhels8", true},
		{"os!~sles", "rhels8", true},
		{"os!~sles", "sles15", false},
		{"os!~sles", "", true},
		{"cpucount<10", "9", true},   // numeric
		{"cpucount<10", "10", false}, // numeric
		{"cpucount<10", "9.5", true},
		{"cpucount<10", "-3", true},
		{"cpucount>=1e1", "10", true},
		{"cpucount>9", "10", true},
		{"name<node10", "node9", false}, // string: "node9" > "node10"
		{"name>node10", "node9", true},
		{"name<=b", "b", true},
		{"name<b", "", true},        // "" sorts first
		{"cpucount<10", "x", false}, // string compare "x" vs "10"
		{"cpucount<0x10", "9", false},
		{"v>inf", "5", false}, // inf is not a number here: "5" sorts before "inf"
	}
	for _, tt := range tests {
		t.Run(tt.where+" "+tt.value, func(t *testing.T) {
			w, err := ParseWhere(tt.where)
			if err != nil {
				t.Fatalf("ParseWhere(%q): %v", tt.where, err)
			}
			got, err := w.Match(tt.value)
			if err != nil {
				t.Fatalf("%v.Match(%q) error: %v", w, tt.value, err)
			}
			if got != tt.want {
				t.Errorf("%v.Match(%q) = %v, want %v", w, tt.value, got, tt.want)
			}
		})
	}
}

func TestWhereMatchDefinedAndTabdump(t *testing.T) {
	tests := []struct {
		where, value     string
		defined, tabdump bool
	}{
		{"mgt!=ipmi", "", false, false},
		{"mgt!=ipmi", "hmc", true, true},
		{"mgt==", "", false, false},
		{"os!~sles", "", false, false},
		{"os=~rhel", "rhels8", true, true},
		// LIKE patterns in tabdump: whole value, % and _, ASCII case-insensitive.
		{"node=~%comp%", "xcompute1", false, true},
		{"node=~comp%", "xcompute1", false, false},
		{"node=~COMP%", "compute1", false, true},
		{"node=~node_1%", "nodeX10", false, true},
		{"node=~node_1%", "node10", false, false},
		{"node!~%ib%", "eth0", true, true},
		{"node!~%ib%", "ib0", true, false},
		{"node=~%(%", "a(b", true, true},  // not a regular expression: LIKE everywhere
		{"node=~%.%", "%x%", true, false}, // a regular expression too, where . is any character
	}
	for _, tt := range tests {
		t.Run(tt.where+" "+tt.value, func(t *testing.T) {
			w, err := ParseWhere(tt.where)
			if err != nil {
				t.Fatalf("ParseWhere(%q): %v", tt.where, err)
			}
			m, err := w.Compile()
			if err != nil {
				t.Fatalf("Compile(%v): %v", w, err)
			}
			if got := m.MatchDefined(tt.value); got != tt.defined {
				t.Errorf("%v.MatchDefined(%q) = %v, want %v", w, tt.value, got, tt.defined)
			}
			if got := m.MatchTabdump(tt.value); got != tt.tabdump {
				t.Errorf("%v.MatchTabdump(%q) = %v, want %v", w, tt.value, got, tt.tabdump)
			}
		})
	}
}

func TestWhereCompileErrors(t *testing.T) {
	for _, w := range []Where{{"a", "~=", "b"}, {"a", "=~", "("}, {"a", "", "b"}} {
		if _, err := w.Compile(); !errors.Is(err, ErrWhereSyntax) {
			t.Errorf("%#v.Compile() error = %v, want ErrWhereSyntax", w, err)
		}
		if _, err := w.Match("x"); err == nil {
			t.Errorf("%#v.Match succeeded, want an error", w)
		}
	}
}

func TestParseWherevals(t *testing.T) {
	tests := []struct {
		in   string
		want []Where
	}{
		{"mgt==hmc::cons==hmc", []Where{{"mgt", "==", "hmc"}, {"cons", "==", "hmc"}}},
		{"mgt==hmc", []Where{{"mgt", "==", "hmc"}}},
		{"os=~/rhel/::arch!=ppc64", []Where{{"os", "=~", "rhel"}, {"arch", "!=", "ppc64"}}},
		{"mgt==hmc::", []Where{{"mgt", "==", "hmc"}}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := ParseWherevals(tt.in)
		if err != nil {
			t.Errorf("ParseWherevals(%q) error: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseWherevals(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
	if _, err := ParseWherevals("mgt==hmc::bogus"); !errors.Is(err, ErrWhereSyntax) || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("ParseWherevals with a bad piece: %v, want ErrWhereSyntax naming it", err)
	}
}

func ExampleParseWhere() {
	w, err := ParseWhere("os=~/^rhels8/")
	if err != nil {
		fmt.Println(err)
		return
	}
	m, _ := w.Compile()
	fmt.Println(w.Attr, w.Op, w.Value, m.Match("rhels8.6"), m.Match("sles15"))
	// Output: os =~ ^rhels8 true false
}

func BenchmarkWhereMatch(b *testing.B) {
	m, err := Where{"nodehm.mgt", "=~", "^ip.i$"}.Compile()
	if err != nil {
		b.Fatal(err)
	}
	values := []string{"ipmi", "hmc", "", "openbmc"}
	for b.Loop() {
		for _, v := range values {
			m.Match(v)
		}
	}
}

// FuzzWhere checks that parsing never panics, that String gives back what was parsed, and
// that matching never panics.
func FuzzWhere(f *testing.F) {
	for _, s := range []string{"mgt==ipmi", "os=~/^rhel/", "a!~b", "x<=5", "y>b", "a=b", "a=~%x%", "a<b!~c", "::"} {
		f.Add(s, "ipmi")
	}
	f.Fuzz(func(t *testing.T, s, value string) {
		w, err := ParseWhere(s)
		if err != nil {
			return
		}
		back, err := ParseWhere(w.String())
		if err != nil || back != w {
			t.Fatalf("ParseWhere(%q) = %#v; ParseWhere(%q) = %#v, %v", s, w, w.String(), back, err)
		}
		m, err := w.Compile()
		if err != nil {
			t.Fatalf("%#v parsed but does not compile: %v", w, err)
		}
		// Each operator and its negation disagree on every value.
		neg := map[string]string{"==": "!=", "!=": "==", "=~": "!~", "!~": "=~", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}[w.Op]
		n, err := Where{w.Attr, neg, w.Value}.Compile()
		if err != nil {
			t.Fatalf("negation of %#v does not compile: %v", w, err)
		}
		if m.Match(value) == n.Match(value) {
			t.Fatalf("%v and %v agree on %q", w, neg, value)
		}
		if m.MatchDefined(value) && value == "" {
			t.Fatalf("%v.MatchDefined matched an unset value", w)
		}
		if m.MatchTabdump(value) && value == "" {
			t.Fatalf("%v.MatchTabdump matched an unset value", w)
		}
		if _, err := ParseWherevals(s); err != nil && !errors.Is(err, ErrWhereSyntax) {
			t.Fatalf("ParseWherevals(%q) error %v does not wrap ErrWhereSyntax", s, err)
		}
	})
}
