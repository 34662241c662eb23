package tftp

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func rq(op byte, fields ...string) []byte {
	b := []byte{0, op}
	for _, f := range fields {
		b = append(append(b, f...), 0)
	}
	return b
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Request
		err  bool
	}{
		{"plain", rq(1, "pxelinux.0", "octet"), Request{Name: "pxelinux.0", Mode: "octet"}, false},
		{"write", rq(2, "f", "NetASCII"), Request{Write: true, Name: "f", Mode: "netascii"}, false},
		{"options", rq(1, "f", "octet", "BLKSIZE", "1468", "tsize", "0", "windowsize", "16"),
			Request{Name: "f", Mode: "octet", Options: []Option{{"blksize", "1468"}, {"tsize", "0"}, {"windowsize", "16"}}}, false},
		{"duplicate option keeps first", rq(1, "f", "octet", "blksize", "1468", "blksize", "8"),
			Request{Name: "f", Mode: "octet", Options: []Option{{"blksize", "1468"}}}, false},
		{"padding", append(rq(1, "f", "octet"), 0, 0, 0), Request{Name: "f", Mode: "octet"}, false},
		{"short", []byte{0}, Request{}, true},
		{"data opcode", rq(3, "f", "octet"), Request{}, true},
		{"empty name", rq(1, "", "octet"), Request{}, true},
		{"no mode", rq(1, "f"), Request{}, true},
		{"unterminated name", []byte{0, 1, 'f'}, Request{}, true},
		{"empty mode", rq(1, "f", ""), Request{}, true},
		{"option without value", append(rq(1, "f", "octet"), "blksize"...), Request{}, true},
		{"option without value NUL", rq(1, "f", "octet", "blksize"), Request{}, true},
		{"empty option name", append(rq(1, "f", "octet"), 0, '1', 0), Request{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.in)
			if tt.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseRequest(%q) = %+v, %v; want ErrMalformed", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%q) error %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRequest(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
	many := rq(1, "f", "octet")
	for i := range 17 {
		many = append(append(append(many, 'o', byte('a'+i)), 0, '1'), 0)
	}
	if _, err := ParseRequest(many); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseRequest(17 options) error %v, want ErrMalformed", err)
	}
}

func TestAppendError(t *testing.T) {
	long := make([]byte, 2000)
	for i := range long {
		long[i] = 'x'
	}
	long[3] = 0
	p := appendError(nil, CodeNotFound, string(long))
	if len(p) > 512 {
		t.Errorf("ERROR packet of %d bytes, want at most 512", len(p))
	}
	e := parseError(p)
	if e.Code != CodeNotFound || len(e.Message) != 500 {
		t.Errorf("parseError = code %d, message of %d bytes; want 1 and 500", e.Code, len(e.Message))
	}
}

// FuzzParseRequest checks that parsing never panics and that a parsed request survives
// a round trip through its wire form.
func FuzzParseRequest(f *testing.F) {
	f.Add(rq(1, "pxelinux.0", "octet"))
	f.Add(rq(1, "f", "octet", "blksize", "1468", "tsize", "0", "windowsize", "16"))
	f.Add(rq(2, "a/b", "netascii"))
	f.Add(append(rq(1, "f", "octet"), 0, 0))
	f.Add([]byte{0, 1, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := ParseRequest(p)
		if err != nil {
			return
		}
		again, err := ParseRequest(r.AppendTo(nil))
		if err != nil {
			t.Fatalf("ParseRequest(AppendTo(%+v)) error %v", r, err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", p, diff)
		}
	})
}
