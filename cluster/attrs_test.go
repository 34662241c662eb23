package cluster

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAttrsMapToSchema checks every attribute definition against the schema: its table and
// column exist, its key column holds the object's name, and a condition names an
// unconditional attribute of the same object type.
func TestAttrsMapToSchema(t *testing.T) {
	for _, typ := range ObjectTypes() {
		ot, _ := LookupObjectType(typ)
		for _, a := range ot.Attrs {
			tab, ok := LookupTable(a.Table)
			if !ok || !tab.HasColumn(a.Column) || !tab.HasColumn(a.Key) {
				t.Errorf("%s.%s -> %s.%s (key %s): not in the schema", typ, a.Name, a.Table, a.Column, a.Key)
				continue
			}
			if (typ == "node" || typ == "group") && tab.NodeKeyed() && a.Key != tab.NodeColumn() {
				t.Errorf("%s.%s: key %s, want the node column %s", typ, a.Name, a.Key, tab.NodeColumn())
			}
			if a.OnlyIf == "" {
				continue
			}
			k, _, _ := strings.Cut(a.OnlyIf, "=")
			plain := false
			for _, d := range ot.Attr(k) {
				plain = plain || d.OnlyIf == ""
			}
			if !plain {
				t.Errorf("%s.%s: condition %s names no unconditional attribute", typ, a.Name, a.OnlyIf)
			}
		}
	}
}

// TestDefineNewTableAttrs defines objects whose attributes live in the tables that came
// with the full schema (ppc, ppchcp, vm, iscsi, zvm, mp, mpa, pdu, switches, winimage) and
// reads them back as lsdef does and as rows.
func TestDefineNewTableAttrs(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		define(t, s, Definition{Type: "node", Names: []string{"lpar1"}, Mode: ModeCreate,
			Attrs: assigns("groups", "lpars,all", "mgt", "hmc", "hcp", "hmc1", "id", "3", "pprofile", "prof1",
				"parent", "cec1", "hwtype", "lpar", "vmhost", "kvm1", "vmmemory", "4096", "iscsiserver", "10.90.0.9",
				"iscsitarget", "iqn.2026-01.test:lpar1", "prescripts-begin", "install:a.sh")})
		want := map[string]string{
			"groups": "lpars,all", "mgt": "hmc", "hcp": "hmc1", "id": "3", "pprofile": "prof1", "parent": "cec1",
			"hwtype": "lpar", "vmhost": "kvm1", "vmmemory": "4096", "iscsiserver": "10.90.0.9",
			"iscsitarget": "iqn.2026-01.test:lpar1", "prescripts-begin": "install:a.sh",
			"postscripts": "syslog,remoteshell,syncfiles", "postbootscripts": "otherpkgs",
		}
		if diff := cmp.Diff(want, object(t, s, "node", "lpar1")); diff != "" {
			t.Errorf("lsdef lpar1 (-want +got):\n%s", diff)
		}
		for table, want := range map[string][]Row{
			"ppc":        {{"node": "lpar1", "hcp": "hmc1", "id": "3", "pprofile": "prof1", "parent": "cec1", "nodetype": "lpar"}},
			"vm":         {{"node": "lpar1", "host": "kvm1", "memory": "4096"}},
			"iscsi":      {{"node": "lpar1", "server": "10.90.0.9", "target": "iqn.2026-01.test:lpar1"}},
			"prescripts": {{"node": "lpar1", "begin": "install:a.sh"}},
		} {
			if diff := cmp.Diff(want, rows(t, s, table, nil)); diff != "" {
				t.Errorf("%s rows (-want +got):\n%s", table, diff)
			}
		}
		// pprofile exists only for mgt=hmc, ivm or fsp.
		_, err := Define(ctx, s, Definition{Type: "node", Names: []string{"ipmi1"}, Mode: ModeCreate,
			Attrs: assigns("groups", "all", "mgt", "ipmi", "pprofile", "p")})
		if err == nil || !strings.Contains(err.Error(), "Cannot set the attribute 'pprofile'") || !strings.Contains(err.Error(), "mgt=hmc or mgt=ivm or mgt=fsp") {
			t.Errorf("pprofile with mgt=ipmi: err = %v", err)
		}

		// ppchcp is keyed by hcp (Schema.pm's nodecol); a group row is inherited.
		define(t, s, Definition{Type: "group", Names: []string{"hmcs"}, Mode: ModeCreate,
			Attrs: assigns("nodetype", "hmc", "username", "hscroot")})
		define(t, s, Definition{Type: "node", Names: []string{"hmc1", "hmc2"}, Mode: ModeCreate, Attrs: assigns("groups", "hmcs")})
		define(t, s, Definition{Type: "node", Names: []string{"hmc1"}, Attrs: assigns("password", "abc123")})
		if diff := cmp.Diff([]Row{{"hcp": "hmcs", "username": "hscroot"}, {"hcp": "hmc1", "password": "abc123"}}, rows(t, s, "ppchcp", nil)); diff != "" {
			t.Errorf("ppchcp rows (-want +got):\n%s", diff)
		}
		v := loadView(t, s)
		for _, c := range []struct{ node, attr, want string }{
			{"hmc1", "username", "hscroot"}, {"hmc1", "password", "abc123"}, {"hmc2", "username", "hscroot"},
			{"hmc2", "password", ""}, {"lpar1", "username", ""}, // lpar1 is not nodetype=hmc
		} {
			if got := v.NodeAttr(c.node, c.attr); got != c.want {
				t.Errorf("%s %s = %q, want %q", c.node, c.attr, got, c.want)
			}
		}
		// chdef -n and noderm follow the node column.
		if _, err := Define(ctx, s, Definition{Type: "node", Names: []string{"hmc1"}, NewName: "hmc9"}); err != nil {
			t.Fatal(err)
		}
		if got := rows(t, s, "ppchcp", Row{"hcp": "hmc9"}); len(got) != 1 || got[0]["password"] != "abc123" {
			t.Errorf("ppchcp after chdef -n hmc1 hmc9 = %v", got)
		}
		if err := Noderm(ctx, s, []string{"hmc9"}); err != nil {
			t.Fatal(err)
		}
		if got := rows(t, s, "ppchcp", Row{"hcp": "hmc9"}); len(got) != 0 {
			t.Errorf("ppchcp after noderm hmc9 = %v", got)
		}

		// Blades: mp and mpa (keyed by mpa and username); id and hwtype come from mp for mgt=blade.
		define(t, s, Definition{Type: "node", Names: []string{"mm1"}, Mode: ModeCreate,
			Attrs: assigns("groups", "mm", "nodetype", "mm", "username", "USERID", "password", "PASSW0RD", "slots", "14")})
		define(t, s, Definition{Type: "node", Names: []string{"blade1"}, Mode: ModeCreate,
			Attrs: assigns("groups", "blades", "mgt", "blade", "mpa", "mm1", "id", "4", "hwtype", "blade")})
		if diff := cmp.Diff([]Row{{"mpa": "mm1", "username": "USERID", "password": "PASSW0RD", "slots": "14"}}, rows(t, s, "mpa", nil)); diff != "" {
			t.Errorf("mpa rows (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]Row{{"node": "blade1", "mpa": "mm1", "id": "4", "nodetype": "blade"}}, rows(t, s, "mp", nil)); diff != "" {
			t.Errorf("mp rows (-want +got):\n%s", diff)
		}
		// id is ppc.id for every node and also mp.id for mgt=blade: both are written.
		if got := rows(t, s, "ppc", Row{"node": "blade1"}); len(got) != 1 || got[0]["id"] != "4" {
			t.Errorf("ppc rows of blade1 = %v, want id=4", got)
		}
		if got := object(t, s, "node", "mm1"); got["username"] != "USERID" || got["slots"] != "14" {
			t.Errorf("lsdef mm1 = %v", got)
		}

		// A PDU: nodetype is both nodetype.nodetype and (when it is pdu) pdu.nodetype.
		define(t, s, Definition{Type: "node", Names: []string{"pdu1"}, Mode: ModeCreate,
			Attrs: assigns("groups", "pdus", "nodetype", "pdu", "pdutype", "irpdu", "outlet", "8", "community", "private")})
		if got := rows(t, s, "pdu", nil); len(got) != 1 || got[0]["nodetype"] != "pdu" || got[0]["pdutype"] != "irpdu" {
			t.Errorf("pdu rows = %v, want nodetype=pdu pdutype=irpdu", got)
		}
		if got := rows(t, s, "nodetype", Row{"node": "pdu1"}); len(got) != 1 || got[0]["nodetype"] != "pdu" {
			t.Errorf("nodetype rows of pdu1 = %v, want nodetype=pdu", got)
		}
		got := object(t, s, "node", "pdu1")
		if got["nodetype"] != "pdu" || got["pdutype"] != "irpdu" || got["outlet"] != "8" || got["community"] != "private" {
			t.Errorf("lsdef pdu1 = %v", got)
		}
		// A node with no nodetype at all resolves (the conditional nodetype must not recurse).
		define(t, s, Definition{Type: "node", Names: []string{"plain"}, Mode: ModeCreate, Attrs: assigns("groups", "all")})
		if got := object(t, s, "node", "plain")["nodetype"]; got != "" {
			t.Errorf("plain nodetype = %q, want unset", got)
		}

		// Switch attributes live in switches, keyed by switch name: lsdef reads them back.
		define(t, s, Definition{Type: "node", Names: []string{"sw1"}, Mode: ModeCreate,
			Attrs: assigns("groups", "switches", "nodetype", "switch", "snmpversion", "3", "switchtype", "Mellanox")})
		if got := object(t, s, "node", "sw1"); got["snmpversion"] != "3" || got["switchtype"] != "Mellanox" {
			t.Errorf("lsdef sw1 = %v", got)
		}

		// z/VM: hcp and userid come from zvm when mgt=zvm.
		define(t, s, Definition{Type: "node", Names: []string{"zlinux1"}, Mode: ModeCreate,
			Attrs: assigns("groups", "zvm", "mgt", "zvm", "hcp", "zhcp1", "userid", "LINUX1", "hwtype", "vm")})
		if diff := cmp.Diff([]Row{{"node": "zlinux1", "hcp": "zhcp1", "userid": "LINUX1", "nodetype": "vm"}}, rows(t, s, "zvm", nil)); diff != "" {
			t.Errorf("zvm rows (-want +got):\n%s", diff)
		}
		if got := object(t, s, "node", "zlinux1"); got["hcp"] != "zhcp1" || got["userid"] != "LINUX1" || got["hwtype"] != "vm" {
			t.Errorf("lsdef zlinux1 = %v", got)
		}

		// A Windows osimage keeps its template in winimage, a Linux one in linuximage.
		define(t, s, Definition{Type: "osimage", Names: []string{"win1"}, Mode: ModeCreate,
			Attrs: assigns("imagetype", "windows", "template", "/opt/xcat/share/xcat/install/windows/compute.xml", "installto", "0:1")})
		if diff := cmp.Diff([]Row{{"imagename": "win1", "template": "/opt/xcat/share/xcat/install/windows/compute.xml", "installto": "0:1"}}, rows(t, s, "winimage", nil)); diff != "" {
			t.Errorf("winimage rows (-want +got):\n%s", diff)
		}
		if got := object(t, s, "osimage", "win1"); got["installto"] != "0:1" || got["imagetype"] != "windows" {
			t.Errorf("lsdef -t osimage win1 = %v", got)
		}
		if err := RemoveObjects(ctx, s, "osimage", []string{"win1"}); err != nil {
			t.Fatal(err)
		}
		if got := rows(t, s, "winimage", nil); len(got) != 0 {
			t.Errorf("winimage after rmdef = %v", got)
		}
	})
}
