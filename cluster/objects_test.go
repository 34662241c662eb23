package cluster

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func define(t *testing.T, s Store, d Definition) *DefineResult {
	t.Helper()
	res, err := Define(context.Background(), s, d)
	if err != nil {
		t.Fatalf("Define(%+v): %v", d, err)
	}
	return res
}

func object(t *testing.T, s Store, typ, name string) map[string]string {
	t.Helper()
	o, err := loadView(t, s).Object(typ, name, ObjectOptions{})
	if err != nil {
		t.Fatalf("Object(%s, %s): %v", typ, name, err)
	}
	return o.Attrs
}

func assigns(kv ...string) []Assign {
	var out []Assign
	for i := 0; i < len(kv); i += 2 {
		out = append(out, Assign{kv[i], kv[i+1]})
	}
	return out
}

func TestDefineNode(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		// A new node needs groups, and a failed mkdef creates nothing.
		_, err := Define(ctx, s, Definition{Type: "node", Names: []string{"n1", "n2"}, Mode: ModeCreate, Attrs: assigns("os", "debian12")})
		if err == nil || !strings.Contains(err.Error(), "groups") {
			t.Fatalf("mkdef without groups: err = %v, want one naming groups", err)
		}
		if n := len(rows(t, s, "nodelist", nil)); n != 0 {
			t.Fatalf("failed mkdef left %d nodelist rows", n)
		}
		res := define(t, s, Definition{Type: "node", Names: []string{"n1", "n2"}, Mode: ModeCreate,
			Attrs: assigns("groups", "compute,all", "os", "debian12", "mgt", "ipmi", "bmc", "10.1.0.1", "ip", "10.0.0.1", "nicips.eth1", "10.2.0.1")})
		if diff := cmp.Diff([]string{"n1", "n2"}, res.Created); diff != "" {
			t.Errorf("created (-want +got):\n%s", diff)
		}
		want := map[string]string{
			"groups": "compute,all", "os": "debian12", "mgt": "ipmi", "bmc": "10.1.0.1", "ip": "10.0.0.1",
			"nicips.eth1":     "10.2.0.1",
			"postscripts":     "syslog,remoteshell,syncfiles", // xcatdefaults shown in long form
			"postbootscripts": "otherpkgs",
		}
		if diff := cmp.Diff(want, object(t, s, "node", "n1")); diff != "" {
			t.Errorf("lsdef n1 (-want +got):\n%s", diff)
		}
		// mkdef of an existing node fails without -f; -f replaces the definition.
		if _, err := Define(ctx, s, Definition{Type: "node", Names: []string{"n1"}, Mode: ModeCreate, Attrs: assigns("groups", "x")}); !errors.Is(err, ErrExists) {
			t.Errorf("mkdef existing: err = %v, want ErrExists", err)
		}
		define(t, s, Definition{Type: "node", Names: []string{"n1"}, Mode: ModeReplace, Attrs: assigns("groups", "all")})
		if got := object(t, s, "node", "n1"); got["os"] != "" || got["groups"] != "all" {
			t.Errorf("after mkdef -f: %v, want only groups=all (plus defaults)", got)
		}
		// chdef -p / -m edit comma lists; bmc needs mgt=ipmi, which a group may provide.
		define(t, s, Definition{Type: "node", Names: []string{"n2"}, Mode: ModeAppend, Attrs: assigns("groups", "aix,all")})
		define(t, s, Definition{Type: "node", Names: []string{"n2"}, Mode: ModeRemove, Attrs: assigns("groups", "compute")})
		if got := object(t, s, "node", "n2")["groups"]; got != "all,aix" {
			t.Errorf("groups after -p aix,all and -m compute = %q, want all,aix", got)
		}
		_, err = Define(ctx, s, Definition{Type: "node", Names: []string{"n1"}, Mode: ModeChange, Attrs: assigns("bmc", "10.9.9.9")})
		if err == nil || !strings.Contains(err.Error(), "Cannot set") {
			t.Errorf("chdef bmc without mgt=ipmi: err = %v, want Cannot set ...", err)
		}
		define(t, s, Definition{Type: "group", Names: []string{"all"}, Mode: ModeChange, Attrs: assigns("mgt", "ipmi")})
		define(t, s, Definition{Type: "node", Names: []string{"n1"}, Mode: ModeChange, Attrs: assigns("bmc", "10.9.9.9")})
		if got := object(t, s, "node", "n1")["bmc"]; got != "10.9.9.9" {
			t.Errorf("bmc with mgt inherited from group all = %q", got)
		}
		// Unknown attributes are refused.
		if _, err := Define(ctx, s, Definition{Type: "node", Names: []string{"n1"}, Attrs: assigns("nosuchattr", "1")}); err == nil || !strings.Contains(err.Error(), "nosuchattr") {
			t.Errorf("unknown attribute: err = %v", err)
		}
		// Rename moves every row.
		define(t, s, Definition{Type: "node", Names: []string{"n2"}, Mode: ModeChange, NewName: "n2new"})
		if len(rows(t, s, "nodelist", Row{"node": "n2"})) != 0 || object(t, s, "node", "n2new")["os"] != "debian12" {
			t.Errorf("rename n2 -> n2new did not move the rows")
		}
		if err := RemoveObjects(ctx, s, "node", []string{"n2new"}); err != nil {
			t.Fatal(err)
		}
		for _, tab := range []string{"nodelist", "nodetype", "ipmi", "nics", "hosts"} {
			if n := len(rows(t, s, tab, Row{"node": "n2new"})); n != 0 {
				t.Errorf("rmdef left %d rows in %s", n, tab)
			}
		}
	})
}

func TestDefineGroups(t *testing.T) {
	s := openSQLite(t)
	ctx := context.Background()
	define(t, s, Definition{Type: "node", Names: []string{"n1", "n2", "n3"}, Mode: ModeCreate, Attrs: assigns("groups", "all,systemp")})
	define(t, s, Definition{Type: "node", Names: []string{"abcabc1"}, Mode: ModeCreate, Attrs: assigns("groups", "abcabc")})
	define(t, s, Definition{Type: "group", Names: []string{"g"}, Mode: ModeCreate, Attrs: assigns("members", "n1,n3", "os", "debian12")})
	if got := loadView(t, s).NodeGroups("n1"); strings.Join(got, ",") != "all,systemp,g" {
		t.Errorf("n1 groups = %v, want all,systemp,g", got)
	}
	g := object(t, s, "group", "g")
	if g["members"] != "n1,n3" || g["grouptype"] != "static" || g["os"] != "debian12" {
		t.Errorf("lsdef -t group g = %v", g)
	}
	// chdef without -p replaces membership.
	define(t, s, Definition{Type: "group", Names: []string{"g"}, Mode: ModeChange, Attrs: assigns("members", "n2")})
	if got := object(t, s, "group", "g")["members"]; got != "n2" {
		t.Errorf("members after replace = %q, want n2", got)
	}
	define(t, s, Definition{Type: "group", Names: []string{"g"}, Mode: ModeAppend, Attrs: assigns("members", "n3")})
	define(t, s, Definition{Type: "group", Names: []string{"g"}, Mode: ModeRemove, Attrs: assigns("members", "n2")})
	if got := object(t, s, "group", "g")["members"]; got != "n3" {
		t.Errorf("members after -p n3 -m n2 = %q, want n3", got)
	}
	// A dynamic group.
	define(t, s, Definition{Type: "group", Names: []string{"dg"}, Mode: ModeCreate, Dynamic: true, Where: []string{"os==debian12"}})
	dg := object(t, s, "group", "dg")
	if dg["grouptype"] != "dynamic" || dg["wherevals"] != "os==debian12" || dg["members"] != "n3" {
		t.Errorf("dynamic group = %v, want members n3 (the only node in g, which has os=debian12)", dg)
	}
	// rmdef removes the group from its members, and abcabc is not touched by abc.
	if err := RemoveObjects(ctx, s, "group", []string{"g"}); err != nil {
		t.Fatal(err)
	}
	v := loadView(t, s)
	if got := strings.Join(v.NodeGroups("n3"), ","); got != "all,systemp" {
		t.Errorf("n3 groups after rmdef g = %q", got)
	}
	if v.IsGroup("g") {
		t.Errorf("group g still exists after rmdef")
	}
}

func TestDefineNetworkOsimageSitePolicy(t *testing.T) {
	s := openSQLite(t)
	ctx := context.Background()
	if _, err := Define(ctx, s, Definition{Type: "network", Names: []string{"net1"}, Mode: ModeCreate, Attrs: assigns("net", "10.0.0.0")}); err == nil || !strings.Contains(err.Error(), "Net or mask value should not be empty") {
		t.Errorf("network without mask: %v", err)
	}
	define(t, s, Definition{Type: "network", Names: []string{"net1"}, Mode: ModeCreate, Attrs: assigns("net", "10.0.0.0", "mask", "255.255.255.0", "gateway", "10.0.0.254")})
	if _, err := Define(ctx, s, Definition{Type: "network", Names: []string{"net2"}, Mode: ModeCreate, Attrs: assigns("net", "10.0.0.0", "mask", "255.255.255.0")}); err == nil || !strings.Contains(err.Error(), "A network definition called 'net1' already exists") {
		t.Errorf("duplicate network: %v", err)
	}
	if diff := cmp.Diff(map[string]string{"net": "10.0.0.0", "mask": "255.255.255.0", "gateway": "10.0.0.254"}, object(t, s, "network", "net1")); diff != "" {
		t.Errorf("network (-want +got):\n%s", diff)
	}
	define(t, s, Definition{Type: "osimage", Names: []string{"img"}, Mode: ModeCreate, Attrs: assigns("provmethod", "netboot", "rootimgdir", "/install/netboot/img", "osvers", "debian12")})
	if diff := cmp.Diff(map[string]string{"imagetype": "linux", "provmethod": "netboot", "rootimgdir": "/install/netboot/img", "osvers": "debian12"}, object(t, s, "osimage", "img")); diff != "" {
		t.Errorf("osimage (-want +got):\n%s", diff)
	}
	define(t, s, Definition{Type: "site", Names: []string{SiteObjectName}, Attrs: assigns("domain", "example.org", "forwarders", "10.9.9.9")})
	site := object(t, s, "site", SiteObjectName)
	if site["domain"] != "example.org" || site["forwarders"] != "10.9.9.9" || site["xcatdport"] != "3001" {
		t.Errorf("site object = %v", site)
	}
	if got := object(t, s, "policy", "1")["rule"]; got != "allow" {
		t.Errorf("policy 1 rule = %q, want allow", got)
	}
	if _, err := loadView(t, s).Object("osimage", "nosuch", ObjectOptions{}); err == nil || err.Error() != "Could not find an object named 'nosuch' of type 'osimage'.: not found" {
		t.Errorf("missing osimage: %v", err)
	}
}

func TestLsdefFormats(t *testing.T) {
	objs := []*Object{
		{Type: "node", Name: "node01", Attrs: map[string]string{"os": "rhels7.9", "groups": "compute,all", "arch": "x86_64"}},
		{Type: "node", Name: "node02", Attrs: map[string]string{"groups": "all"}},
	}
	cases := []struct {
		name  string
		f     LsdefFormat
		only  []string
		multi bool
		want  string
	}{
		{"long", LsdefLong, nil, false, "Object name: node01\n    arch=x86_64\n    groups=compute,all\n    os=rhels7.9\nObject name: node02\n    groups=all\n"},
		{"long multi-type", LsdefLong, nil, true, "Object name: node01  (node)\n    arch=x86_64\n    groups=compute,all\n    os=rhels7.9\nObject name: node02  (node)\n    groups=all\n"},
		{"short", LsdefShort, nil, false, "node01  (node)\nnode02  (node)\n"},
		{"compressed", LsdefCompressed, nil, false, "node01: arch=x86_64\nnode01: groups=compute,all\nnode01: os=rhels7.9\nnode02: groups=all\n"},
		{"only with unset", LsdefLong, []string{"os", "ip"}, false, "Object name: node01\n    os=rhels7.9\n    ip=\nObject name: node02\n    os=\n    ip=\n"},
		{"stanza", LsdefStanza, nil, false, "# <xCAT data object stanza file>\n\nnode01:\n    objtype=node\n    arch=x86_64\n    groups=compute,all\n    os=rhels7.9\n\nnode02:\n    objtype=node\n    groups=all\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteLsdef(&b, objs, c.f, c.only, c.multi); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, b.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// The stanza form reads back.
	var b bytes.Buffer
	_ = WriteLsdef(&b, objs, LsdefStanza, nil, false)
	back, err := ReadStanza(&b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(objs, back); diff != "" {
		t.Errorf("stanza round trip (-want +got):\n%s", diff)
	}
}
