package ha

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestHostsAddRemove(t *testing.T) {
	a := netip.MustParseAddr("10.96.0.10")
	tests := []struct {
		name      string
		in        string
		names     []string
		wantAdd   string
		wantAdded bool
	}{
		{"empty", "", []string{"mn"}, "10.96.0.10\tmn # provkit-ha\n", true},
		{"appends", "127.0.0.1 localhost\n", []string{"mn.cluster", "mn"}, "127.0.0.1 localhost\n10.96.0.10\tmn.cluster mn # provkit-ha\n", true},
		{"no final newline", "127.0.0.1 localhost", []string{"mn"}, "127.0.0.1 localhost\n10.96.0.10\tmn # provkit-ha\n", true},
		{"already there", "10.96.0.10 other mn # admin\n", []string{"mn"}, "10.96.0.10 other mn # admin\n", false},
		{"commented out is not there", "#10.96.0.10 mn\n", []string{"mn"}, "#10.96.0.10 mn\n10.96.0.10\tmn # provkit-ha\n", true},
		{"other address same name", "10.96.0.11 mn\n", []string{"mn"}, "10.96.0.11 mn\n10.96.0.10\tmn # provkit-ha\n", true},
		{"crlf", "127.0.0.1 localhost\r\n", []string{"mn"}, "127.0.0.1 localhost\r\n10.96.0.10\tmn # provkit-ha\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, added := HostsAdd([]byte(tt.in), a, tt.names, hostsTag)
			if string(got) != tt.wantAdd || added != tt.wantAdded {
				t.Fatalf("HostsAdd(%q) = %q, %v; want %q, %v", tt.in, got, added, tt.wantAdd, tt.wantAdded)
			}
			back, removed := HostsRemove(got, a, hostsTag)
			if removed != added {
				t.Errorf("HostsRemove removed = %v, want %v", removed, added)
			}
			want := tt.in
			if added && len(tt.in) > 0 && tt.in[len(tt.in)-1] != '\n' {
				want += "\n"
			}
			if string(back) != want {
				t.Errorf("HostsRemove(HostsAdd(%q)) = %q, want %q", tt.in, back, want)
			}
		})
	}
}

func TestHostsLookup(t *testing.T) {
	data := []byte("# comment 10.96.0.10 nope\n10.96.0.1 gw\n  10.96.0.10\tmn.cluster mn # the VIP\n10.96.0.10 second\n")
	if got, ok := HostsLookup(data, netip.MustParseAddr("10.96.0.10")); !ok || got != "mn.cluster" {
		t.Errorf("HostsLookup = %q, %v; want mn.cluster", got, ok)
	}
	if got, ok := HostsLookup(data, netip.MustParseAddr("10.96.0.99")); ok {
		t.Errorf("HostsLookup of an absent address = %q", got)
	}
}

func TestWriteFileAtomicKeepsMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(p, []byte("a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(p, []byte("b\n")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after write = %v, %v; want 0600", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// FuzzHosts: adding the VIP's line and removing it gives back the file (with a final
// newline), whatever the file holds, and adding twice adds once.
func FuzzHosts(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n"), "mn.cluster")
	f.Add([]byte("10.96.0.10 mn # provkit-ha\n"), "mn")
	f.Add([]byte("\r\n# x\n10.96.0.10"), "a")
	a := netip.MustParseAddr("10.96.0.10")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		if !validHostname(name) {
			return
		}
		// The line is ours only if the file had none of our tagged lines before.
		if _, had := HostsRemove(data, a, hostsTag); had {
			return
		}
		out, added := HostsAdd(data, a, hostsNames(name), hostsTag)
		if !added {
			if !bytes.Equal(out, data) {
				t.Fatalf("HostsAdd changed the file without adding")
			}
			return
		}
		if got, ok := HostsLookup(out, a); !ok || got == "" {
			t.Fatalf("after HostsAdd, HostsLookup finds nothing")
		}
		if again, added2 := HostsAdd(out, a, hostsNames(name), hostsTag); added2 || !bytes.Equal(again, out) {
			t.Fatalf("HostsAdd twice added twice")
		}
		back, removed := HostsRemove(out, a, hostsTag)
		want := data
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want = append(append([]byte{}, data...), '\n')
		}
		if !removed || !bytes.Equal(back, want) {
			t.Fatalf("HostsRemove(HostsAdd(%q)) = %q, want %q", data, back, want)
		}
	})
}
