// Package xdr is the small subset of XDR (RFC 4506) and ONC RPC (RFC 5531) that nfsroot
// speaks: a bounds-checked decoder over one request, an appending encoder for replies, the
// RPC call header with AUTH_SYS credentials, and record marking over TCP.
//
// It allocates nothing per value decoded except where the caller asks for a copy, and never
// panics on malformed input: the first error sticks and every later read returns zero.
package xdr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrShort: the input ended inside a value.
var ErrShort = errors.New("xdr: short input")

// ErrTooLong: a variable-length value is longer than its declared bound.
var ErrTooLong = errors.New("xdr: value longer than its bound")

// Decoder reads XDR values from a byte slice. The zero value is empty.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder decodes b (not copied).
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Reset points d at b and clears its error.
func (d *Decoder) Reset(b []byte) { d.b, d.err = b, nil }

// Err is the first error met, nil if none.
func (d *Decoder) Err() error { return d.err }

// Len is the number of bytes left.
func (d *Decoder) Len() int { return len(d.b) }

// Rest returns the bytes left, without consuming them.
func (d *Decoder) Rest() []byte { return d.b }

func (d *Decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

// Uint32 reads an unsigned int.
func (d *Decoder) Uint32() uint32 {
	if len(d.b) < 4 {
		d.fail(ErrShort)
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

// Uint64 reads an unsigned hyper.
func (d *Decoder) Uint64() uint64 {
	if len(d.b) < 8 {
		d.fail(ErrShort)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// Bool reads a bool (any non-zero value is true, as most implementations accept).
func (d *Decoder) Bool() bool { return d.Uint32() != 0 }

// Opaque reads variable-length opaque data of at most max bytes. The result aliases the
// input.
func (d *Decoder) Opaque(max int) []byte {
	n := d.Uint32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		d.fail(fmt.Errorf("%w: %d > %d", ErrTooLong, n, max))
		return nil
	}
	return d.Fixed(int(n))
}

// Fixed reads n bytes of fixed-length opaque data (plus padding). The result aliases the
// input.
func (d *Decoder) Fixed(n int) []byte {
	if n < 0 || d.err != nil {
		d.fail(ErrShort)
		return nil
	}
	padded := n + pad(n)
	if padded > len(d.b) || padded < n {
		d.fail(ErrShort)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[padded:]
	return v
}

// String reads a string of at most max bytes.
func (d *Decoder) String(max int) string { return string(d.Opaque(max)) }

func pad(n int) int { return (4 - n&3) & 3 }

// Encoder appends XDR values to a byte slice.
type Encoder struct {
	B []byte
}

// Uint32 appends an unsigned int.
func (e *Encoder) Uint32(v uint32) { e.B = binary.BigEndian.AppendUint32(e.B, v) }

// Uint64 appends an unsigned hyper.
func (e *Encoder) Uint64(v uint64) { e.B = binary.BigEndian.AppendUint64(e.B, v) }

// Bool appends a bool.
func (e *Encoder) Bool(v bool) {
	if v {
		e.Uint32(1)
	} else {
		e.Uint32(0)
	}
}

// Opaque appends variable-length opaque data.
func (e *Encoder) Opaque(v []byte) {
	e.Uint32(uint32(len(v)))
	e.Fixed(v)
}

// String appends a string.
func (e *Encoder) String(v string) {
	e.Uint32(uint32(len(v)))
	e.B = append(e.B, v...)
	e.B = append(e.B, zeros[:pad(len(v))]...)
}

// Fixed appends fixed-length opaque data with its padding.
func (e *Encoder) Fixed(v []byte) {
	e.B = append(e.B, v...)
	e.B = append(e.B, zeros[:pad(len(v))]...)
}

// Len is the number of bytes encoded so far.
func (e *Encoder) Len() int { return len(e.B) }

var zeros [4]byte

// PaddedLen is the encoded size of n bytes of opaque data with its length.
func PaddedLen(n int) int { return 4 + n + pad(n) }

// Record marking (RFC 5531 section 11).

// lastFragment flags the last fragment of a record.
const lastFragment = 1 << 31

// ErrRecordTooLong: a record is longer than the reader's limit.
var ErrRecordTooLong = errors.New("rpc: record longer than the limit")

// ReadRecord reads one record (all its fragments) from r into buf[:0] and returns it. A
// record longer than max bytes is refused with ErrRecordTooLong before it is read.
func ReadRecord(r io.Reader, buf []byte, max int) ([]byte, error) {
	out := buf[:0]
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF || (err == io.EOF && len(out) > 0) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		m := binary.BigEndian.Uint32(hdr[:])
		n := int(m &^ lastFragment)
		if len(out)+n > max || len(out)+n < len(out) {
			return nil, fmt.Errorf("%w (%d > %d)", ErrRecordTooLong, len(out)+n, max)
		}
		start := len(out)
		if cap(out)-start < n {
			grown := make([]byte, start, start+n+min(n, 64<<10))
			copy(grown, out)
			out = grown
		}
		out = out[:start+n]
		if _, err := io.ReadFull(r, out[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if m&lastFragment != 0 {
			return out, nil
		}
	}
}

// MarkRecord writes the record mark for a single-fragment record into the first 4 bytes of
// rec, which hold the header space reserved by the caller (rec[4:] is the message).
func MarkRecord(rec []byte) {
	binary.BigEndian.PutUint32(rec, uint32(len(rec)-4)|lastFragment)
}

// MaxUint32 is the largest XDR unsigned int.
const MaxUint32 = math.MaxUint32
