package ha_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/provkit/provkit/ha"
)

func TestParseServiceSpec(t *testing.T) {
	tests := []struct {
		in   string
		want ha.ServiceSpec
	}{
		{"database=unit:postgresql", ha.ServiceSpec{Name: "database", Kind: "unit", Unit: "postgresql"}},
		{"dns=unit:named.service;health=tcp:10.0.0.1:53", ha.ServiceSpec{Name: "dns", Kind: "unit", Unit: "named.service", Health: "tcp:10.0.0.1:53"}},
		{"provd=exec:/usr/sbin/provd --db /var/lib/provkit/provkit.db;health=http://10.0.0.1/healthz",
			ha.ServiceSpec{Name: "provd", Kind: "exec", Argv: []string{"/usr/sbin/provd", "--db", "/var/lib/provkit/provkit.db"}, Health: "http://10.0.0.1/healthz"}},
		{"pg=exec:/usr/lib/postgresql/15/bin/postgres -D /shared/pg;user=postgres;stop=INT;timeout=20s;log=/var/log/pg.log;pidfile=/run/pg.pid",
			ha.ServiceSpec{Name: "pg", Kind: "exec", Argv: []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "/shared/pg"},
				User: "postgres", StopSignal: "SIGINT", StopTimeout: 20 * time.Second, LogFile: "/var/log/pg.log", PIDFile: "/run/pg.pid"}},
		{"x=exec:/bin/true;health=tcp:[fd00::1]:80", ha.ServiceSpec{Name: "x", Kind: "exec", Argv: []string{"/bin/true"}, Health: "tcp:[fd00::1]:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ha.ParseServiceSpec(tt.in)
			if err != nil {
				t.Fatalf("ParseServiceSpec(%q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseServiceSpec(%q) (-want +got):\n%s", tt.in, diff)
			}
			again, err := ha.ParseServiceSpec(got.String())
			if err != nil || !cmp.Equal(again, got) {
				t.Errorf("round trip through %q = %+v, %v", got.String(), again, err)
			}
			if _, err := got.Service(); err != nil {
				t.Errorf("Service() = %v", err)
			}
		})
	}
}

func TestParseServiceSpecErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "want NAME=unit:UNIT"},
		{"provd", "want NAME=unit:UNIT"},
		{"=unit:x", `name ""`},
		{"bad name=unit:x", `name "bad name"`},
		{"x=docker:y", `kind "docker"`},
		{"x=unit", "want unit:UNIT or exec:PROGRAM"},
		{"x=unit:", `unit ""`},
		{"x=unit:-x", `unit "-x"`},
		{"x=exec:", `program ""`},
		{"x=exec:provd --db x", `program "provd": want an absolute path`},
		{"x=exec:/bin/x;stop=BOOM", `stop signal "BOOM"`},
		{"x=exec:/bin/x;timeout=-1s", `timeout "-1s"`},
		{"x=exec:/bin/x;health=ftp://x", `health check "ftp://x"`},
		{"x=exec:/bin/x;health=tcp:nohost", `health check "tcp:nohost"`},
		{"x=exec:/bin/x;log=rel.log", `log "rel.log"`},
		{"x=exec:/bin/x;colour=blue", `unknown option "colour"`},
		{"x=exec:/bin/x;user=a;user=b", "option user given twice"},
		{"x=exec:/bin/x;user", `option "user": want key=value`},
		{"x=unit:y;user=root", "exec services only"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ha.ParseServiceSpec(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "service ") {
				t.Errorf("ParseServiceSpec(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestServiceSpecService(t *testing.T) {
	sp, err := ha.ParseServiceSpec("pg=exec:/usr/bin/postgres -D /d;stop=INT;user=postgres;pidfile=/run/pg.pid")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := sp.Service()
	if err != nil {
		t.Fatal(err)
	}
	p, ok := svc.(*ha.Process)
	if !ok {
		t.Fatalf("Service() = %T, want *ha.Process", svc)
	}
	if p.Name() != "pg" || p.Path != "/usr/bin/postgres" || p.StopSignal != syscall.SIGINT || p.User != "postgres" || p.PIDFile != "/run/pg.pid" {
		t.Errorf("Process = %+v", p)
	}
}

// FuzzParseServiceSpec: a spec that parses writes back to a string that parses to the same
// spec, and makes a Service.
func FuzzParseServiceSpec(f *testing.F) {
	for _, s := range []string{
		"database=unit:postgresql",
		"provd=exec:/usr/sbin/provd --db /var/lib/provkit/provkit.db;health=http://10.0.0.1/healthz",
		"pg=exec:/usr/bin/postgres -D /d;user=postgres;stop=INT;timeout=20s;log=/l;pidfile=/p",
		"x=exec:/bin/true;health=tcp:h:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ha.ParseServiceSpec(s)
		if err != nil {
			return
		}
		again, err := ha.ParseServiceSpec(sp.String())
		if err != nil {
			t.Fatalf("ParseServiceSpec(%q) ok, but its String %q fails: %v", s, sp.String(), err)
		}
		if !cmp.Equal(sp, again) {
			t.Fatalf("round trip of %q:\n%+v\n%+v", s, sp, again)
		}
		if _, err := sp.Service(); err != nil {
			t.Fatalf("Service() of %q: %v", s, err)
		}
	})
}
