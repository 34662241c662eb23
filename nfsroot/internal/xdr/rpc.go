package xdr

import (
	"errors"
	"fmt"
)

// Message types and reply states (RFC 5531).
const (
	msgCall  = 0
	msgReply = 1

	replyAccepted = 0
	replyDenied   = 1
)

// AcceptStat is the accept_stat of an accepted reply.
type AcceptStat uint32

// Accept states.
const (
	Success      AcceptStat = 0
	ProgUnavail  AcceptStat = 1
	ProgMismatch AcceptStat = 2
	ProcUnavail  AcceptStat = 3
	GarbageArgs  AcceptStat = 4
	SystemErr    AcceptStat = 5
)

// AuthStat is why a call's credentials were refused.
type AuthStat uint32

// Authentication states used by nfsroot.
const (
	AuthBadCred  AuthStat = 1
	AuthTooWeak  AuthStat = 5
	AuthRejected AuthStat = 2
)

// Authentication flavors.
const (
	AuthNone = 0
	AuthSys  = 1
)

// Creds are the caller's AUTH_SYS credentials (AUTH_NONE maps to nobody, 65534).
type Creds struct {
	Flavor uint32
	UID    uint32
	GID    uint32
	// Groups are the supplementary groups (at most 16).
	Groups []uint32
}

// Nobody is what AUTH_NONE callers are.
const Nobody = 65534

// InGroup reports whether the caller has gid as primary or supplementary group.
func (c *Creds) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// Call is a parsed RPC call header.
type Call struct {
	XID   uint32
	Prog  uint32
	Vers  uint32
	Proc  uint32
	Creds Creds
	// Args are the procedure's arguments (aliasing the record).
	Args []byte
}

// ErrNotCall: the message is not an RPC version 2 call.
var ErrNotCall = errors.New("rpc: not an RPC v2 call")

// ErrBadCred: the credentials could not be parsed (answered with AUTH_ERROR/AUTH_BADCRED).
var ErrBadCred = errors.New("rpc: malformed credentials")

// ParseCall parses an RPC call. For ErrBadCred the XID is valid and the caller should reply
// with an authentication error; for other errors the message should be dropped.
func ParseCall(rec []byte) (Call, error) {
	var c Call
	d := NewDecoder(rec)
	c.XID = d.Uint32()
	mtype := d.Uint32()
	rpcvers := d.Uint32()
	if d.Err() != nil {
		return c, fmt.Errorf("%w: %v", ErrNotCall, d.Err())
	}
	if mtype != msgCall {
		return c, fmt.Errorf("%w: message type %d", ErrNotCall, mtype)
	}
	c.Prog = d.Uint32()
	c.Vers = d.Uint32()
	c.Proc = d.Uint32()
	flavor := d.Uint32()
	body := d.Opaque(400)
	d.Uint32() // verifier flavor
	d.Opaque(400)
	if d.Err() != nil {
		return c, fmt.Errorf("%w: %v", ErrBadCred, d.Err())
	}
	if rpcvers != 2 {
		return c, fmt.Errorf("%w: RPC version %d", ErrNotCall, rpcvers)
	}
	c.Creds.Flavor = flavor
	switch flavor {
	case AuthSys:
		a := NewDecoder(body)
		a.Uint32()    // stamp
		a.Opaque(255) // machine name
		c.Creds.UID = a.Uint32()
		c.Creds.GID = a.Uint32()
		n := a.Uint32()
		if n > 16 {
			return c, fmt.Errorf("%w: %d groups", ErrBadCred, n)
		}
		if n > 0 {
			c.Creds.Groups = make([]uint32, n)
			for i := range c.Creds.Groups {
				c.Creds.Groups[i] = a.Uint32()
			}
		}
		if a.Err() != nil || a.Len() != 0 {
			return c, fmt.Errorf("%w: AUTH_SYS body", ErrBadCred)
		}
	default:
		c.Creds.UID, c.Creds.GID = Nobody, Nobody
	}
	c.Args = d.Rest()
	return c, nil
}

// AppendCall encodes a call header with AUTH_SYS credentials (for clients and tests).
func AppendCall(e *Encoder, xid, prog, vers, proc uint32, cred Creds) {
	e.Uint32(xid)
	e.Uint32(msgCall)
	e.Uint32(2)
	e.Uint32(prog)
	e.Uint32(vers)
	e.Uint32(proc)
	if cred.Flavor != AuthSys {
		e.Uint32(AuthNone)
		e.Uint32(0)
	} else {
		var b Encoder
		b.Uint32(0)
		b.String("provkit")
		b.Uint32(cred.UID)
		b.Uint32(cred.GID)
		b.Uint32(uint32(len(cred.Groups)))
		for _, g := range cred.Groups {
			b.Uint32(g)
		}
		e.Uint32(AuthSys)
		e.Opaque(b.B)
	}
	e.Uint32(AuthNone)
	e.Uint32(0)
}

// AppendAccepted appends the header of an accepted reply with the given status. For
// ProgMismatch the caller appends the low and high versions; for Success, the results.
func AppendAccepted(e *Encoder, xid uint32, stat AcceptStat) {
	e.Uint32(xid)
	e.Uint32(msgReply)
	e.Uint32(replyAccepted)
	e.Uint32(AuthNone) // verifier
	e.Uint32(0)
	e.Uint32(uint32(stat))
}

// AppendAuthError appends a denied reply with an authentication error.
func AppendAuthError(e *Encoder, xid uint32, stat AuthStat) {
	e.Uint32(xid)
	e.Uint32(msgReply)
	e.Uint32(replyDenied)
	e.Uint32(1) // AUTH_ERROR
	e.Uint32(uint32(stat))
}

// Reply is a parsed reply header (for clients and tests).
type Reply struct {
	XID      uint32
	Accepted bool
	Stat     AcceptStat
	Auth     AuthStat
	Results  []byte
}

// ParseReply parses an RPC reply.
func ParseReply(rec []byte) (Reply, error) {
	var r Reply
	d := NewDecoder(rec)
	r.XID = d.Uint32()
	if d.Uint32() != msgReply {
		return r, errors.New("rpc: not a reply")
	}
	switch d.Uint32() {
	case replyAccepted:
		r.Accepted = true
		d.Uint32()
		d.Opaque(400)
		r.Stat = AcceptStat(d.Uint32())
	case replyDenied:
		if d.Uint32() == 1 {
			r.Auth = AuthStat(d.Uint32())
		}
	default:
		return r, errors.New("rpc: bad reply state")
	}
	if d.Err() != nil {
		return r, d.Err()
	}
	r.Results = d.Rest()
	return r, nil
}
