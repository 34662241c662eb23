package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nrFake is a NodeSource over a node list, like nodelist plus nodegroup.
type nrFake struct {
	order   []string
	nodes   map[string]bool
	groups  map[string][]string          // from nodelist.groups, in node order
	defined map[string][]string          // nodegroup rows; nil members means "use nodelist.groups"
	attrs   map[string]map[string]string // node -> attr -> resolved value
	calls   int                          // GroupMembers calls
}

func newNRFake() *nrFake {
	return &nrFake{
		nodes:   make(map[string]bool),
		groups:  make(map[string][]string),
		defined: make(map[string][]string),
		attrs:   make(map[string]map[string]string),
	}
}

// add adds nodes with their nodelist.groups.
func (f *nrFake) add(groups string, names ...string) {
	for _, n := range names {
		f.order = append(f.order, n)
		f.nodes[n] = true
		if groups == "" {
			continue
		}
		for g := range strings.SplitSeq(groups, ",") {
			f.groups[g] = append(f.groups[g], n)
		}
	}
}

func (f *nrFake) set(attr, value string, names ...string) {
	for _, n := range names {
		if f.attrs[n] == nil {
			f.attrs[n] = make(map[string]string)
		}
		f.attrs[n][attr] = value
	}
}

func (f *nrFake) IsNode(name string) bool { return f.nodes[name] }
func (f *nrFake) Nodes() []string         { return f.order }

func (f *nrFake) GroupMembers(name string) ([]string, bool, error) {
	f.calls++
	if m, ok := f.defined[name]; ok && m != nil {
		return m, true, nil
	}
	m, ok := f.groups[name]
	if _, def := f.defined[name]; def {
		ok = true
	}
	return m, ok, nil
}

func (f *nrFake) Match(attr, op, val string) ([]string, error) {
	m, err := Where{attr, op, val}.Compile()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range f.order {
		if m.Match(f.attrs[n][attr]) {
			out = append(out, n)
		}
	}
	return out, nil
}

func nrSeq(format string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf(format, i))
	}
	return out
}

func nrSorted(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// nrWorkedCluster is the cluster of noderange.md's worked examples, plus a few nodes for
// the other cases.
func nrWorkedCluster() *nrFake {
	f := newNRFake()
	f.add("compute,all", nrSeq("node%02d", 1, 10)...)
	f.add("storage,all", "node11", "node12")
	f.add("frame", "f1n1", "f1n2", "f1n3", "f2n1", "f2n2", "f2n3")
	f.add("all", nrSeq("exnode%d", 1, 5)...)
	f.add("group1,group2", "nrtestnode1")
	f.add("group1", "nrtestnode2", "nrtestnode3")
	f.set("nodehm.mgt", "ipmi", nrSeq("node%02d", 1, 5)...)
	f.set("nodehm.mgt", "hmc", "node06", "node07")
	f.set("nodelist.groups", "compute,all", nrSeq("node%02d", 1, 10)...)
	return f
}

var nrFiles = map[string]string{
	"/tmp/nl":    "node01\nnode02 # c\n#x\n",
	"/tmp/crlf":  "node03\r\nnode04\tcomment\r\n^/tmp/nl\r\n",
	"/tmp/lines": "node01-node03\n-node02\n\n   node09\nnode05:extra\n",
}

func nrReadFile(path string) ([]byte, error) {
	if s, ok := nrFiles[path]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

func TestExpandNoderangeWorkedExamples(t *testing.T) {
	src := nrWorkedCluster()
	compute := nrSeq("node%02d", 1, 10)
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"single node", "node01", []string{"node01"}},
		{"list", "node01,node03", []string{"node01", "node03"}},
		{"dash range", "node01-node04", nrSeq("node%02d", 1, 4)},
		{"bracket range", "node[01-04]", nrSeq("node%02d", 1, 4)},
		{"colon range", "node01:node04", nrSeq("node%02d", 1, 4)},
		{"bracket colon range", "node[01:04]", nrSeq("node%02d", 1, 4)},
		{"bracket list", "node[01,03,05]", []string{"node01", "node03", "node05"}},
		{"brackets multiply", "f[1-2]n[1-3]", []string{"f1n1", "f1n2", "f1n3", "f2n1", "f2n2", "f2n3"}},
		{"increment", "node08+2", []string{"node08", "node09", "node10"}},
		{"group", "compute", compute},
		{"two groups", "compute,storage", nrSeq("node%02d", 1, 12)},
		{"group minus group", "all,-compute", []string{"exnode1", "exnode2", "exnode3", "exnode4", "exnode5", "node11", "node12"}},
		{"exclusions", "exnode1-exnode5,-exnode3,-exnode4", []string{"exnode1", "exnode2", "exnode5"}},
		{"exclusion first", "-exnode3,exnode1-exnode5", []string{"exnode1", "exnode2", "exnode4", "exnode5"}},
		{"exclusion wins over later add", "node01-node10,-node03-node05,node04", []string{"node01", "node02", "node06", "node07", "node08", "node09", "node10"}},
		{"intersection", "group1@group2", []string{"nrtestnode1"}},
		{"intersection with all", "compute@all", compute},
		{"regex", "/node0[1-3]", []string{"node01", "node02", "node03"}},
		{"regex star", "/nrtestnode.*", []string{"nrtestnode1", "nrtestnode2", "nrtestnode3"}},
		{"regex anchored", "/node1", nil},
		{"selector", "nodehm.mgt==ipmi", nrSeq("node%02d", 1, 5)},
		{"file", "^/tmp/nl", []string{"node01", "node02"}},
		{"commas inside brackets", "node[01-02],node05", []string{"node01", "node02", "node05"}},
		{"parentheses", "(node01,node02),node03", []string{"node01", "node02", "node03"}},
		{"minus parentheses", "compute,-(node01,node02)", nrSeq("node%02d", 3, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandNoderange(tt.expr, src, RangeOptions{ReadFile: nrReadFile})
			if err != nil {
				t.Fatalf("ExpandNoderange(%q) error: %v", tt.expr, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ExpandNoderange(%q) mismatch (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

func TestExpandNoderangeBareNumbers(t *testing.T) {
	src := nrWorkedCluster()
	got, err := ExpandNoderange("10-12", src, RangeOptions{})
	if err != nil {
		t.Fatalf("ExpandNoderange(10-12): %v", err)
	}
	if diff := cmp.Diff([]string{"node10", "node11", "node12"}, got); diff != "" {
		t.Errorf("ExpandNoderange(10-12) mismatch (-want +got):\n%s", diff)
	}
}

func TestExpandNoderangeMissing(t *testing.T) {
	src := nrWorkedCluster()
	tests := []struct {
		name      string
		expr      string
		opt       RangeOptions
		wantNodes []string
		wantErr   string
	}{
		{"nonexistent name", "node01,nonexist", RangeOptions{}, []string{"node01"},
			"Invalid nodes and/or groups in noderange: nonexist"},
		{"unpadded range of padded nodes", "node[1-3]", RangeOptions{}, nil,
			"Invalid nodes and/or groups in noderange: node1,node2,node3"},
		{"prefix env", "10-20", RangeOptions{Prefix: "abc"}, nil,
			"Invalid nodes and/or groups in noderange: " + strings.Join(nrSeq("abc%d", 10, 20), ",")},
		{"expansion order, once each", "zz,node01,aa,zz,-bb", RangeOptions{}, []string{"node01"},
			"Invalid nodes and/or groups in noderange: zz,aa,bb"},
		{"even number of dashes", "a-b-c-d", RangeOptions{}, nil,
			"Invalid nodes and/or groups in noderange: a-b-c-d"},
		{"sides do not line up", "node1-rack5x", RangeOptions{}, nil,
			"Invalid nodes and/or groups in noderange: node1-rack5x"},
		{"suffix", "1-2", RangeOptions{Suffix: "-ib"}, nil,
			"Invalid nodes and/or groups in noderange: node1-ib,node2-ib"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandNoderange(tt.expr, src, tt.opt)
			var me *MissingError
			if !errors.As(err, &me) {
				t.Fatalf("ExpandNoderange(%q) error = %v, want a *MissingError", tt.expr, err)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("ExpandNoderange(%q) error = %q, want %q", tt.expr, err.Error(), tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantNodes, got); diff != "" {
				t.Errorf("ExpandNoderange(%q) nodes mismatch (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

func TestExpandNoderangeGeneric(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"padded dash range", "nrtestnode01-nrtestnode10", nrSeq("nrtestnode%02d", 1, 10)},
		{"padded bracket range", "nrtestnode[01:10]", nrSeq("nrtestnode%02d", 1, 10)},
		{"increment", "nrtestnode10+3", nrSeq("nrtestnode%d", 10, 13)},
		{"bare numbers", "10-20", nrSeq("node%d", 10, 20)},
		{"brackets multiply", "f[1-2]n[1-3]", []string{"f1n1", "f1n2", "f1n3", "f2n1", "f2n2", "f2n3"}},
		{"names", "testnode,testnode1", []string{"testnode", "testnode1"}},
		{"hyphenated name is literal", "mgmt-sw1", []string{"mgmt-sw1"}},
		{"two dashes is literal", "rack-a-1", []string{"rack-a-1"}},
		{"regex is literal", "/node.*", []string{"/node.*"}},
		{"odd dashes split at the middle", "rack-a01-rack-a03", []string{"rack-a01", "rack-a02", "rack-a03"}},
		{"padding kept", "node001-node003", []string{"node001", "node002", "node003"}},
		{"padding across widths", "node08-node12", []string{"node08", "node09", "node10", "node11", "node12"}},
		{"no padding", "node9-node11", []string{"node10", "node11", "node9"}},
		{"padded start, wider end", "n98-n101", []string{"n100", "n101", "n98", "n99"}},
		{"padded start reaching wider end", "n01-n100", nrSorted(nrSeq("n%02d", 1, 99), []string{"n100"})},
		{"unpadded start, padded end", "n1-n010", nrSorted(nrSeq("n%d", 1, 10))},
		{"increment with domain", "node01.foo+2", []string{"node01.foo", "node02.foo", "node03.foo"}},
		{"bare increment", "10+3", nrSeq("node%d", 10, 13)},
		{"increment keeps padding", "n099+2", []string{"n099", "n100", "n101"}},
		{"increment of last number", "r1n08+2", []string{"r1n08", "r1n09", "r1n10"}},
		{"range in the middle", "r01n1-r03n1", []string{"r01n1", "r02n1", "r03n1"}},
		{"same ends", "node5-node5", []string{"node5"}},
		{"bracket with suffix", "node[1-3]-ib", []string{"node1-ib", "node2-ib", "node3-ib"}},
		{"bracket list and range", "n[1-2,5,7:8]", []string{"n1", "n2", "n5", "n7", "n8"}},
		{"three bracket groups", "r[1-2]c[1-2]n[1-2]", []string{"r1c1n1", "r1c1n2", "r1c2n1", "r1c2n2", "r2c1n1", "r2c1n2", "r2c2n1", "r2c2n2"}},
		{"quotes are removed", `'node1',"node2"`, []string{"node1", "node2"}},
		{"exclusion in generic mode", "n[1-5],-n3", []string{"n1", "n2", "n4", "n5"}},
		{"empty expression", "", nil},
		{"commas only", ",,", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandNoderange(tt.expr, nil, RangeOptions{Generic: true})
			if err != nil {
				t.Fatalf("ExpandNoderange(%q, generic) error: %v", tt.expr, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ExpandNoderange(%q, generic) mismatch (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

func TestExpandNoderangeSemantics(t *testing.T) {
	src := nrWorkedCluster()
	src.add("all", "rack-a01", "rack-a02", "rack-a03")
	src.add("", "node1-node3") // a node whose name looks like a range
	src.add("grp1", "g1a")
	src.add("grp2", "g2a", "g2b")
	src.add("grp3", "g3a")
	src.add("", "compute2")            // a node named like a group below
	src.add("compute2", "notcompute2") // ... and that group
	src.defined["emptygrp"] = nil
	src.defined["dyn"] = []string{"node03", "node11"}
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"existing node taken literally", "node1-node3", []string{"node1-node3"}},
		{"node wins over group", "compute2", []string{"compute2"}},
		{"defined empty group", "emptygrp", nil},
		{"defined empty group in a list", "node01,emptygrp", []string{"node01"}},
		{"dynamic group", "dyn", []string{"node03", "node11"}},
		{"group range", "grp1-grp3", []string{"g1a", "g2a", "g2b", "g3a"}},
		{"odd dashes at the middle", "rack-a01-rack-a03", []string{"rack-a01", "rack-a02", "rack-a03"}},
		{"intersection in order", "compute@node01-node05,node11", []string{"node01", "node02", "node03", "node04", "node05", "node11"}},
		{"intersection binds tighter than union", "storage,compute@group1", []string{"node11", "node12"}},
		{"intersection then exclusion", "all@compute,-node02", []string{"node01", "node03", "node04", "node05", "node06", "node07", "node08", "node09", "node10"}},
		{"parenthesised intersection", "all@(node01,node11,f1n1)", []string{"node01", "node11"}},
		{"group after parentheses", "(node01)@compute", []string{"node01"}},
		{"nested parentheses", "((node01,node02)),node03", []string{"node01", "node02", "node03"}},
		{"parenthesised group minus", "(compute,-node01)", nrSeq("node%02d", 2, 10)},
		{"selector not equal", "nodehm.mgt!=ipmi", nrSorted(nrSeq("node%02d", 6, 12), []string{"compute2", "exnode1", "exnode2", "exnode3", "exnode4", "exnode5", "f1n1", "f1n2", "f1n3", "f2n1", "f2n2", "f2n3", "g1a", "g2a", "g2b", "g3a", "node1-node3", "notcompute2", "nrtestnode1", "nrtestnode2", "nrtestnode3", "rack-a01", "rack-a02", "rack-a03"})},
		{"selector regex with slashes", "nodehm.mgt=~/^hm/", []string{"node06", "node07"}},
		{"selector single equals", "nodehm.mgt=hmc", []string{"node06", "node07"}},
		{"selector shortname", "mgt==hmc", []string{"node06", "node07"}},
		{"selector not regex", "compute@nodehm.mgt!~i", []string{"node06", "node07", "node08", "node09", "node10"}},
		{"duplicates removed", "node01,node01,compute@node01", []string{"node01"}},
		{"ascii order", "node10,node1-node3,node02", []string{"node02", "node1-node3", "node10"}},
		{"regex with parentheses", "/node(0|1)1", []string{"node01", "node11"}},
		{"regex with parentheses in a list", "node05,/node(0|1)1,(node06)", []string{"node01", "node05", "node06", "node11"}},
		{"file lines are noderanges", "^/tmp/lines", []string{"node01", "node02", "node03", "node05"}},
		{"file with CRLF, ^ lines ignored", "^/tmp/crlf", []string{"node03", "node04"}},
		{"excluding a file", "compute,-^/tmp/nl", nrSeq("node%02d", 3, 10)},
		{"intersecting a file", "compute@^/tmp/crlf", []string{"node03", "node04"}},
		{"bracket of groups", "grp[1-2]", []string{"g1a", "g2a", "g2b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandNoderange(tt.expr, src, RangeOptions{ReadFile: nrReadFile})
			if err != nil {
				t.Fatalf("ExpandNoderange(%q) error: %v", tt.expr, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ExpandNoderange(%q) mismatch (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

func TestExpandNoderangeErrors(t *testing.T) {
	src := nrWorkedCluster()
	tests := []struct {
		name    string
		expr    string
		opt     RangeOptions
		wantIs  error
		wantSub string // the error names the input
	}{
		{"unbalanced bracket", "node[1-3", RangeOptions{}, ErrRangeSyntax, "node[1-3"},
		{"unbalanced closing bracket", "node1-3]", RangeOptions{}, ErrRangeSyntax, "node1-3]"},
		{"unbalanced parenthesis", "(node01,node02", RangeOptions{}, ErrRangeSyntax, "(node01,node02"},
		{"unbalanced closing parenthesis", "node01)", RangeOptions{}, ErrRangeSyntax, "node01)"},
		{"bad regex", "/node[0-9", RangeOptions{}, ErrRangeSyntax, "/node[0-9"},
		{"regex RE2 cannot run", `/node0++1`, RangeOptions{}, ErrRangeSyntax, `node0++1`},
		{"backwards range", "node10-node05", RangeOptions{Generic: true}, ErrRangeSyntax, "node10-node05"},
		{"backwards padded range", "node09-node05", RangeOptions{Generic: true}, ErrRangeSyntax, "node09-node05"},
		{"padded start wider than end", "node01-node5", RangeOptions{Generic: true}, ErrRangeSyntax, "node01-node5"},
		{"end padded wider than start", "node01-node010", RangeOptions{Generic: true}, ErrRangeSyntax, "node01-node010"},
		{"backwards bracket", "node[5-1]", RangeOptions{Generic: true}, ErrRangeSyntax, "node5-node1"},
		{"increment without number", "nodex+3", RangeOptions{Generic: true}, ErrRangeSyntax, "nodex+3"},
		{"increment not a number", "node1+x", RangeOptions{Generic: true}, ErrRangeSyntax, "node1+x"},
		{"number too large", "node1-node99999999999999999999", RangeOptions{Generic: true}, ErrRangeSyntax, "node1-node99999999999999999999"},
		{"selector without operator", "node~x", RangeOptions{}, ErrRangeSyntax, "node~x"},
		{"selector without attribute", "==x", RangeOptions{}, ErrRangeSyntax, "==x"},
		{"selector bad regex", "nodehm.mgt=~(", RangeOptions{}, ErrRangeSyntax, "nodehm.mgt=~("},
		{"unreadable file", "^/nonexistent", RangeOptions{}, fs.ErrNotExist, "/nonexistent"},
		{"bracket without a name", "[1-2]x[1-3]", RangeOptions{Generic: true}, ErrRangeSyntax, "[1-2]x[1-3]"},
		{"nested brackets", "a[b[1-2]]", RangeOptions{Generic: true}, ErrRangeSyntax, "a[b[1-2]]"},
		{"recursive bare number prefix", "5", RangeOptions{Prefix: "1"}, ErrRangeSyntax, "nested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.ReadFile = nrReadFile
			got, err := ExpandNoderange(tt.expr, src, tt.opt)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("ExpandNoderange(%q) = %v, %v; want error %v", tt.expr, got, err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("ExpandNoderange(%q) error %q does not name %q", tt.expr, err, tt.wantSub)
			}
		})
	}
}

func TestExpandNoderangeTooLarge(t *testing.T) {
	tests := []struct {
		name string
		expr string
		opt  RangeOptions
	}{
		{"huge bracket", "node[1-99999999]", RangeOptions{}},
		{"huge dash range", "node1-node99999999", RangeOptions{}},
		{"huge generic range", "node1-node99999999", RangeOptions{Generic: true}},
		{"brackets multiplying out", "f[1-1000]n[1-1000]x[1-1000]", RangeOptions{}},
		{"brackets multiplying out, generic", "f[1-1000]n[1-1000]x[1-1000]", RangeOptions{Generic: true}},
		{"huge increment", "node1+99999999", RangeOptions{}},
		{"huge bare numbers", "1-99999999", RangeOptions{}},
		{"sum over atoms", "a[1-60],b[1-60]", RangeOptions{Generic: true, MaxNodes: 100}},
		{"just above the limit", "f[1-10]n[1-11]", RangeOptions{Generic: true, MaxNodes: 100}},
		{"inside a file line", "^/big", RangeOptions{MaxNodes: 100, ReadFile: func(string) ([]byte, error) {
			return []byte("n[1-50]\nm[1-51]\n"), nil
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := nrWorkedCluster()
			var err error
			allocs := testing.AllocsPerRun(1, func() {
				_, err = ExpandNoderange(tt.expr, src, tt.opt)
			})
			if !errors.Is(err, ErrRangeTooLarge) {
				t.Fatalf("ExpandNoderange(%q) error = %v, want ErrRangeTooLarge", tt.expr, err)
			}
			if !strings.Contains(err.Error(), tt.expr) {
				t.Errorf("error %q does not name the expression %q", err, tt.expr)
			}
			// Refused before the names are made: a few hundred allocations at most.
			if allocs > 1000 {
				t.Errorf("ExpandNoderange(%q) made %v allocations before refusing", tt.expr, allocs)
			}
		})
	}
}

func TestExpandNoderangeAtLimit(t *testing.T) {
	got, err := ExpandNoderange("f[1-10]n[1-10]", nil, RangeOptions{Generic: true, MaxNodes: 100})
	if err != nil {
		t.Fatalf("ExpandNoderange at the limit: %v", err)
	}
	if len(got) != 100 {
		t.Errorf("ExpandNoderange at the limit gave %d names, want 100", len(got))
	}
}

func TestExpandNoderangeNodeSourceError(t *testing.T) {
	boom := errors.New("store is down")
	src := nrErrSource{err: boom}
	if _, err := ExpandNoderange("somegroup", src, RangeOptions{}); !errors.Is(err, boom) {
		t.Errorf("group lookup error = %v, want %v", err, boom)
	}
	if _, err := ExpandNoderange("nodehm.mgt==ipmi", src, RangeOptions{}); !errors.Is(err, boom) {
		t.Errorf("selector error = %v, want %v", err, boom)
	}
}

type nrErrSource struct{ err error }

func (s nrErrSource) IsNode(string) bool { return false }
func (s nrErrSource) Nodes() []string    { return nil }
func (s nrErrSource) GroupMembers(string) ([]string, bool, error) {
	return nil, false, s.err
}
func (s nrErrSource) Match(string, string, string) ([]string, error) { return nil, s.err }

func ExampleExpandNoderange() {
	// Generic mode (mkdef, nodeadd) expands the syntax alone; verify mode needs a
	// NodeSource over the cluster's nodes and groups.
	names, err := ExpandNoderange("rack[1-2]n[01-03],-rack2n02", nil, RangeOptions{Generic: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Join(names, " "))
	// Output: rack1n01 rack1n02 rack1n03 rack2n01 rack2n03
}

// nrBenchCluster has 10,000 nodes in group compute.
func nrBenchCluster() *nrFake {
	f := newNRFake()
	f.add("compute,all", nrSeq("node%05d", 1, 10000)...)
	return f
}

func BenchmarkExpandNoderange(b *testing.B) {
	src := nrBenchCluster()
	for _, bm := range []struct {
		name, expr string
		opt        RangeOptions
		want       int
	}{
		{"group", "compute", RangeOptions{}, 10000},
		{"bracket", "node[00001-10000]", RangeOptions{}, 10000},
		{"regex", "/node0[0-9]*[13579]", RangeOptions{}, 5000},
		{"range minus group", "node00001-node10000,-(compute@node[01000,02000,03000,04000,05000])", RangeOptions{}, 9995},
		{"generic", "n[00001-10000]", RangeOptions{Generic: true}, 10000},
		{"refused", "f[1-1000]n[1-1000]x[1-1000]", RangeOptions{}, 0},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				got, err := ExpandNoderange(bm.expr, src, bm.opt)
				if bm.want == 0 {
					if !errors.Is(err, ErrRangeTooLarge) {
						b.Fatal(err)
					}
					continue
				}
				if err != nil || len(got) != bm.want {
					b.Fatalf("ExpandNoderange(%q) = %d names, %v; want %d", bm.expr, len(got), err, bm.want)
				}
			}
		})
	}
}

// FuzzNoderange checks that no input panics or hangs, that results are sorted sets, and
// that in verify mode every name returned is a node and every missing name is not.
func FuzzNoderange(f *testing.F) {
	for _, s := range []string{
		"node01", "node01-node04", "node[01-04]", "f[1-2]n[1-3]", "node08+2", "compute,-node01",
		"group1@group2", "/node0[1-3]", "nodehm.mgt==ipmi", "^/tmp/nl", "(node01,node02),node03",
		"compute,-(node01,node02)", "10-12", "rack-a01-rack-a03", "node[1-3]-ib", "n01-n100",
		"a,(b,c)@d,-(e)", "x[1-2]y[3-4]z[5-6]", "node1+", "[1-2]", "a:b:c", "--a", "@@", "((a))",
	} {
		f.Add(s)
	}
	src := nrWorkedCluster()
	f.Fuzz(func(t *testing.T, expr string) {
		for _, generic := range []bool{false, true} {
			opt := RangeOptions{Generic: generic, MaxNodes: 5000, ReadFile: nrReadFile}
			got, err := ExpandNoderange(expr, src, opt)
			var me *MissingError
			if err != nil && !errors.As(err, &me) {
				continue
			}
			if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatalf("ExpandNoderange(%q) = %q: not a sorted set", expr, got)
			}
			if len(got) > opt.MaxNodes+len(src.order) {
				t.Fatalf("ExpandNoderange(%q) gave %d names, over the limit", expr, len(got))
			}
			if generic {
				continue
			}
			for _, n := range got {
				if !src.IsNode(n) {
					t.Fatalf("ExpandNoderange(%q) verify mode returned non-node %q", expr, n)
				}
			}
			if me != nil {
				for _, n := range me.Names {
					if src.IsNode(n) {
						t.Fatalf("ExpandNoderange(%q) reported existing node %q missing", expr, n)
					}
				}
			}
			again, err2 := ExpandNoderange(expr, src, opt)
			if !cmp.Equal(got, again) || (err == nil) != (err2 == nil) {
				t.Fatalf("ExpandNoderange(%q) not deterministic", expr)
			}
		}
	})
}
