package tftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes of RFC 1350 and RFC 2347.
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// An ErrorCode is the code of a TFTP ERROR packet (RFC 1350, RFC 2347).
type ErrorCode uint16

// Error codes.
const (
	CodeUndefined  ErrorCode = 0 // not defined, see message
	CodeNotFound   ErrorCode = 1 // file not found
	CodeAccess     ErrorCode = 2 // access violation
	CodeDiskFull   ErrorCode = 3 // disk full or allocation exceeded
	CodeIllegalOp  ErrorCode = 4 // illegal TFTP operation
	CodeUnknownTID ErrorCode = 5 // unknown transfer ID
	CodeFileExists ErrorCode = 6 // file already exists
	CodeNoSuchUser ErrorCode = 7 // no such user
	CodeBadOption  ErrorCode = 8 // option negotiation refused (RFC 2347)
)

// Protocol limits.
const (
	// MaxBlockSize is the largest blksize RFC 2348 allows.
	MaxBlockSize = 65464
	// MinBlockSize is the smallest blksize RFC 2348 allows.
	MinBlockSize = 8
	// DefaultBlockSize is the block size of a transfer that negotiates none.
	DefaultBlockSize = 512
	// MaxWindowSize is the largest windowsize RFC 7440 allows.
	MaxWindowSize = 65535
	// maxOptions bounds the options read from one request.
	maxOptions = 16
)

// ErrMalformed is wrapped by the errors of ParseRequest.
var ErrMalformed = errors.New("malformed packet")

// An Option is one option of a request (RFC 2347). Its name is lower case.
type Option struct {
	Name, Value string
}

// A Request is a parsed read (RRQ) or write (WRQ) request.
type Request struct {
	Write   bool     // WRQ rather than RRQ
	Name    string   // the file name as the client sent it
	Mode    string   // transfer mode, lower case: "octet" or "netascii" ("mail" is obsolete)
	Options []Option // options in the order sent; names lower case, first of duplicates kept
}

// Option returns the value of the named option (lower case) and whether it was sent.
func (r Request) Option(name string) (string, bool) {
	for _, o := range r.Options {
		if o.Name == name {
			return o.Value, true
		}
	}
	return "", false
}

// ParseRequest parses an RRQ or WRQ packet. Trailing empty fields (padding some
// firmware adds) are ignored; an option without a value, an empty name or mode, a
// missing terminator or more than 16 options are errors wrapping ErrMalformed.
func ParseRequest(p []byte) (Request, error) {
	if len(p) < 2 {
		return Request{}, fmt.Errorf("tftp: request of %d bytes: %w", len(p), ErrMalformed)
	}
	var r Request
	switch op := binary.BigEndian.Uint16(p); op {
	case opRRQ:
	case opWRQ:
		r.Write = true
	default:
		return Request{}, fmt.Errorf("tftp: opcode %d is not a request: %w", op, ErrMalformed)
	}
	rest := p[2:]
	field := func(what string) (string, error) {
		i := indexZero(rest)
		if i < 0 {
			return "", fmt.Errorf("tftp: request %s not terminated by NUL: %w", what, ErrMalformed)
		}
		s := string(rest[:i])
		rest = rest[i+1:]
		return s, nil
	}
	var err error
	if r.Name, err = field("file name"); err != nil {
		return Request{}, err
	}
	if r.Name == "" {
		return Request{}, fmt.Errorf("tftp: request with an empty file name: %w", ErrMalformed)
	}
	if r.Mode, err = field("mode"); err != nil {
		return Request{}, err
	}
	if r.Mode == "" {
		return Request{}, fmt.Errorf("tftp: request for %q with an empty mode: %w", r.Name, ErrMalformed)
	}
	r.Mode = strings.ToLower(r.Mode)
	for len(rest) > 0 {
		if allZero(rest) {
			break
		}
		name, err := field("option name")
		if err != nil {
			return Request{}, err
		}
		if name == "" {
			return Request{}, fmt.Errorf("tftp: request for %q: empty option name: %w", r.Name, ErrMalformed)
		}
		value, err := field("option " + name)
		if err != nil {
			return Request{}, err
		}
		name = strings.ToLower(name)
		if _, dup := r.Option(name); dup {
			continue
		}
		if len(r.Options) == maxOptions {
			return Request{}, fmt.Errorf("tftp: request for %q: more than %d options: %w", r.Name, maxOptions, ErrMalformed)
		}
		r.Options = append(r.Options, Option{name, value})
	}
	return r, nil
}

// AppendTo appends the request's wire form to b.
func (r Request) AppendTo(b []byte) []byte {
	op := opRRQ
	if r.Write {
		op = opWRQ
	}
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(append(b, r.Name...), 0)
	b = append(append(b, r.Mode...), 0)
	return appendOptions(b, r.Options)
}

func appendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

// appendOACK appends an OACK packet carrying opts.
func appendOACK(b []byte, opts []Option) []byte {
	b = binary.BigEndian.AppendUint16(b, opOACK)
	return appendOptions(b, opts)
}

// appendError appends an ERROR packet. The message is cut to fit a 512-byte packet
// and NUL bytes in it are replaced.
func appendError(b []byte, code ErrorCode, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	if len(msg) > 500 {
		msg = msg[:500]
	}
	msg = strings.ReplaceAll(msg, "\x00", " ")
	return append(append(b, msg...), 0)
}

// A PacketError is an ERROR packet received from the peer.
type PacketError struct {
	Code    ErrorCode
	Message string
}

func (e *PacketError) Error() string {
	return fmt.Sprintf("tftp: peer error %d: %s", e.Code, e.Message)
}

func parseError(p []byte) *PacketError {
	if len(p) < 4 {
		return &PacketError{Code: CodeUndefined}
	}
	msg := p[4:]
	if i := indexZero(msg); i >= 0 {
		msg = msg[:i]
	}
	return &PacketError{Code: ErrorCode(binary.BigEndian.Uint16(p[2:])), Message: string(msg)}
}

func indexZero(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
