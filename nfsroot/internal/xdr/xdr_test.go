package xdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	var e Encoder
	e.Uint32(7)
	e.Uint64(1 << 40)
	e.Bool(true)
	e.Opaque([]byte("abcde"))
	e.String("xy")
	e.Fixed([]byte{1, 2, 3})
	if e.Len()%4 != 0 {
		t.Fatalf("encoding of %d bytes is not 4-aligned", e.Len())
	}
	d := NewDecoder(e.B)
	got := []any{d.Uint32(), d.Uint64(), d.Bool(), string(d.Opaque(8)), d.String(8), d.Fixed(3)}
	want := []any{uint32(7), uint64(1 << 40), true, "abcde", "xy", []byte{1, 2, 3}}
	if diff := cmp.Diff(want, got); diff != "" || d.Err() != nil || d.Len() != 0 {
		t.Errorf("round trip (-want +got):\n%s err=%v left=%d", diff, d.Err(), d.Len())
	}
}

func TestDecoderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(d *Decoder)
		want error
	}{
		{"short uint32", []byte{1, 2}, func(d *Decoder) { d.Uint32() }, ErrShort},
		{"short uint64", []byte{1, 2, 3, 4}, func(d *Decoder) { d.Uint64() }, ErrShort},
		{"opaque too long", []byte{0, 0, 1, 0}, func(d *Decoder) { d.Opaque(64) }, ErrTooLong},
		{"opaque past end", []byte{0, 0, 0, 8, 1, 2}, func(d *Decoder) { d.Opaque(64) }, ErrShort},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, func(d *Decoder) { d.Opaque(1 << 30) }, ErrTooLong},
		{"missing padding", []byte{0, 0, 0, 1, 'a'}, func(d *Decoder) { d.Opaque(4) }, ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(tt.in)
			tt.read(d)
			if !errors.Is(d.Err(), tt.want) {
				t.Errorf("err = %v, want %v", d.Err(), tt.want)
			}
			if d.Uint32() != 0 || d.Err() == nil {
				t.Error("decoder kept reading after an error")
			}
		})
	}
}

func record(frags ...[]byte) []byte {
	var out []byte
	for i, f := range frags {
		m := uint32(len(f))
		if i == len(frags)-1 {
			m |= lastFragment
		}
		out = binary.BigEndian.AppendUint32(out, m)
		out = append(out, f...)
	}
	return out
}

func TestReadRecord(t *testing.T) {
	in := bytes.NewReader(append(record([]byte("hello "), []byte("world")), record([]byte("next"))...))
	got, err := ReadRecord(in, nil, 100)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("first record = %q, %v", got, err)
	}
	got, err = ReadRecord(in, nil, 100)
	if err != nil || string(got) != "next" {
		t.Fatalf("second record = %q, %v", got, err)
	}
	if _, err := ReadRecord(in, nil, 100); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
	if _, err := ReadRecord(bytes.NewReader(record(make([]byte, 101))), nil, 100); !errors.Is(err, ErrRecordTooLong) {
		t.Errorf("long record: %v", err)
	}
	// Many small fragments adding up past the limit are refused too.
	var frags [][]byte
	for range 30 {
		frags = append(frags, make([]byte, 10))
	}
	if _, err := ReadRecord(bytes.NewReader(record(frags...)), nil, 100); !errors.Is(err, ErrRecordTooLong) {
		t.Errorf("fragmented long record: %v", err)
	}
	if _, err := ReadRecord(bytes.NewReader(record([]byte("abc"))[:5]), nil, 100); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated record: %v", err)
	}
}

func TestParseCall(t *testing.T) {
	var e Encoder
	AppendCall(&e, 42, 100003, 3, 1, Creds{Flavor: AuthSys, UID: 1000, GID: 100, Groups: []uint32{4, 27}})
	e.Uint32(0xabcdef)
	c, err := ParseCall(e.B)
	if err != nil {
		t.Fatal(err)
	}
	want := Call{XID: 42, Prog: 100003, Vers: 3, Proc: 1,
		Creds: Creds{Flavor: AuthSys, UID: 1000, GID: 100, Groups: []uint32{4, 27}}, Args: []byte{0, 0xab, 0xcd, 0xef}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ParseCall (-want +got):\n%s", diff)
	}
	var n Encoder
	AppendCall(&n, 1, 100000, 2, 0, Creds{})
	c, err = ParseCall(n.B)
	if err != nil || c.Creds.UID != Nobody || c.Creds.Flavor != AuthNone {
		t.Errorf("AUTH_NONE call = %+v, %v", c, err)
	}
	var reply Encoder
	AppendAccepted(&reply, 9, Success)
	if _, err := ParseCall(reply.B); !errors.Is(err, ErrNotCall) {
		t.Errorf("ParseCall(reply) = %v, want ErrNotCall", err)
	}
}

func FuzzParseCall(f *testing.F) {
	var e Encoder
	AppendCall(&e, 42, 100003, 3, 1, Creds{Flavor: AuthSys, UID: 1000, GID: 100, Groups: []uint32{4, 27}})
	f.Add(e.B)
	var n Encoder
	AppendCall(&n, 1, 100000, 2, 3, Creds{})
	n.Uint32(100003)
	f.Add(n.B)
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCall(b)
		if err != nil {
			return
		}
		if len(c.Creds.Groups) > 16 {
			t.Fatalf("accepted %d groups", len(c.Creds.Groups))
		}
		// Re-encoding what was understood and parsing again gives the same call.
		var e Encoder
		AppendCall(&e, c.XID, c.Prog, c.Vers, c.Proc, c.Creds)
		e.B = append(e.B, c.Args...)
		c2, err := ParseCall(e.B)
		if err != nil {
			t.Fatalf("re-encoded call does not parse: %v", err)
		}
		if c.Creds.Flavor != AuthSys {
			c.Creds = Creds{Flavor: AuthNone, UID: Nobody, GID: Nobody}
		}
		if diff := cmp.Diff(c, c2, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzReadRecord(f *testing.F) {
	f.Add(record([]byte("hello"), []byte(" world")))
	f.Add([]byte{0x80, 0, 0, 0})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			rec, err := ReadRecord(r, nil, 1024)
			if err != nil {
				return
			}
			if len(rec) > 1024 {
				t.Fatalf("record of %d bytes past the limit", len(rec))
			}
		}
	})
}
