package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var serialRE = regexp.MustCompile(`\(serial (\d+)\)`)

func serialOf(t *testing.T, zone string) uint64 {
	t.Helper()
	m := serialRE.FindStringSubmatch(zone)
	if m == nil {
		t.Fatalf("no serial in:\n%s", zone)
	}
	n, _ := strconv.ParseUint(m[1], 10, 32)
	return n
}

func TestMakedns(t *testing.T) {
	c := newCLI(t)
	bind := filepath.Join(c.dir, "bind")
	c.ok("chtab", "key=domain", "site.value=cluster.test")
	c.ok("chtab", "key=binddir", "site.value="+bind)
	c.ok("chtab", "key=master", "site.value=10.97.5.1")
	c.ok("chtab", "key=forwarders", "site.value=10.97.5.53")
	c.ok("mkdef", "-t", "network", "-o", "mgt", "net=10.97.5.0", "mask=255.255.255.0")
	c.ok("nodeadd", "n[1-2]", "groups=compute")
	c.ok("chtab", "node=compute", `hosts.ip=|n(\d+)|10.97.5.($1+10)|`)
	c.ok("chtab", "node=n1", "hosts.hostnames=login")
	c.ok("makedns", "-n")

	fwd := filepath.Join(bind, "db.cluster.test")
	rev := filepath.Join(bind, "db.5.97.10.in-addr.arpa")
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(strings.ToLower(host), ".")
	got := readFile(t, fwd)
	for _, want := range []string{"@\tIN\tNS\t" + host + ".cluster.test.\n", "login\tIN\tCNAME\tn1.cluster.test.\n",
		"n1\tIN\tA\t10.97.5.11\n", "n2\tIN\tA\t10.97.5.12\n", host + "\tIN\tA\t10.97.5.1\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s has no %q:\n%s", fwd, want, got)
		}
	}
	if got := readFile(t, rev); !strings.Contains(got, "11\tIN\tPTR\tn1.cluster.test.\n") {
		t.Errorf("%s:\n%s", rev, got)
	}
	if diff := cmp.Diff("// zones of the cluster, written by provkit makedns: include this file in named.conf\n"+
		"zone \"cluster.test\" {\n\ttype primary;\n\tfile \""+fwd+"\";\n\tallow-update { none; };\n};\n"+
		"zone \"5.97.10.in-addr.arpa\" {\n\ttype primary;\n\tfile \""+rev+"\";\n\tallow-update { none; };\n};\n",
		readFile(t, filepath.Join(bind, "named.conf.zones"))); diff != "" {
		t.Errorf("named.conf.zones (-want +got):\n%s", diff)
	}
	if got := readFile(t, filepath.Join(bind, "named.conf.options")); !strings.Contains(got, "forwarders { 10.97.5.53; };") {
		t.Errorf("named.conf.options:\n%s", got)
	}
	s1 := serialOf(t, readFile(t, fwd))

	// A hand-made record survives makedns <noderange>; the serial grows.
	if err := os.WriteFile(fwd, []byte(readFile(t, fwd)+"printer\tIN\tA\t10.97.5.200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("nodeadd", "n3", "groups=compute")
	c.ok("chtab", "node=n1", "hosts.ip=10.97.5.21") // n1 moves
	c.ok("makedns", "n1,n3")
	got = readFile(t, fwd)
	for _, want := range []string{"printer\tIN\tA\t10.97.5.200\n", "n1\tIN\tA\t10.97.5.21\n", "n3\tIN\tA\t10.97.5.13\n", "n2\tIN\tA\t10.97.5.12\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("after makedns n1,n3: no %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.97.5.11") {
		t.Errorf("n1's old address is still there:\n%s", got)
	}
	if r := readFile(t, rev); strings.Contains(r, "11\tIN\tPTR") || !strings.Contains(r, "21\tIN\tPTR\tn1.cluster.test.") {
		t.Errorf("reverse zone after n1 moved:\n%s", r)
	}
	if s2 := serialOf(t, got); s2 <= s1 {
		t.Errorf("serial %d after %d, want it to grow", s2, s1)
	}

	c.ok("makedns", "-d", "n1")
	got = readFile(t, fwd)
	if strings.Contains(got, "n1\t") || strings.Contains(got, "login\t") || !strings.Contains(got, "n2\tIN\tA") {
		t.Errorf("after makedns -d n1:\n%s", got)
	}
	if errs := c.fails("makedns", "-d"); !strings.Contains(errs, "makedns -d without noderange is not supported") {
		t.Errorf("makedns -d: %s", errs)
	}
	// A zone file people broke is an error that names it, and nothing is written.
	os.WriteFile(fwd, []byte("garbage\n"), 0o644)
	if errs := c.fails("makedns", "n2"); !strings.Contains(errs, fwd) {
		t.Errorf("makedns on a broken file: %s", errs)
	}
	if got := readFile(t, fwd); got != "garbage\n" {
		t.Errorf("the broken file was changed")
	}
	c.ok("makedns", "-n") // -n rebuilds it
}

func TestDiscoverCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("chtab", "key=domain", "site.value=cluster.test")
	c.ok("nodeadd", "n[1-3]", "groups=compute")
	c.ok("chtab", "node=n1", "mac.mac=52:54:00:97:05:01")
	if got := c.ok("nodediscoverstatus"); got != "Sequential Discovery is stopped.\nProfile Discovery is stopped.\n" {
		t.Errorf("nodediscoverstatus = %q", got)
	}
	if got := c.ok("nodediscoverstart", "noderange=n[1-3]", "hostiprange=10.97.5.100-10.97.5.199"); got !=
		"Sequential Discovery: Started:\n    Number of free node names: 2\n    Number of free host ips: 100\n" {
		t.Errorf("nodediscoverstart = %q", got)
	}
	if errs := c.fails("nodediscoverstart", "-n", "n[1-3]"); !strings.Contains(errs, "Sequential Discovery is running") {
		t.Errorf("nodediscoverstart again: %s", errs)
	}
	if got := c.ok("nodediscoverstatus"); got != "Sequential discovery is running.\n    The parameters used for discovery: noderange=n[1-3],hostiprange=10.97.5.100-10.97.5.199\n" {
		t.Errorf("nodediscoverstatus = %q", got)
	}
	if got := c.ok("nodediscoverls"); got != "Discovered 0 node.\n" {
		t.Errorf("nodediscoverls = %q", got)
	}
	if errs := c.fails("nodediscoverls", "-t", "nosuch"); !strings.Contains(errs, "The discovery type 'nosuch' is not supported") {
		t.Errorf("nodediscoverls -t nosuch: %s", errs)
	}
	if errs := c.fails("nodediscoverdef", "-u", "nosuch", "-n", "n2"); !strings.Contains(errs, "Cannot find discovery entry with uuid equals nosuch") {
		t.Errorf("nodediscoverdef unknown: %s", errs)
	}
	if got := c.ok("nodediscoverstop"); got != "Discovered 0 nodes.\n" {
		t.Errorf("nodediscoverstop = %q", got)
	}
	if errs := c.fails("nodediscoverstop"); !strings.Contains(errs, "Sequential Discovery is stopped.") {
		t.Errorf("nodediscoverstop again: %s", errs)
	}
	if errs := c.fails("nodediscoverstart", "bogus=1"); !strings.Contains(errs, `Invalid arguement "bogus"`) {
		t.Errorf("nodediscoverstart bogus=1: %s", errs)
	}
	if got := c.ok("nodediscoverdef", "-r", "-t", "all"); got != "Removing discovery entries finished.\n" {
		t.Errorf("nodediscoverdef -r -t all = %q", got)
	}
}
