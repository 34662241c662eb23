package ipmi

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
)

// Privilege is an IPMI privilege level.
type Privilege uint8

// Privilege levels.
const (
	PrivCallback Privilege = 1
	PrivUser     Privilege = 2
	PrivOperator Privilege = 3
	PrivAdmin    Privilege = 4
)

func (p Privilege) String() string {
	switch p {
	case PrivCallback:
		return "callback"
	case PrivUser:
		return "user"
	case PrivOperator:
		return "operator"
	case PrivAdmin:
		return "administrator"
	}
	return fmt.Sprintf("privilege(%d)", uint8(p))
}

// NameOnlyLookup is the RAKP 1 role bit that asks the BMC to find the user by name only
// (what ipmitool sends by default).
const NameOnlyLookup = 0x10

// MaxPasswordLen is the longest IPMI v2.0 password (key K_UID).
const MaxPasswordLen = 20

// MaxUserLen is the longest IPMI user name.
const MaxUserLen = 16

// StatusCode is an RMCP+ and RAKP message status code. A non-zero code is an error.
type StatusCode uint8

var statusText = map[StatusCode]string{
	0x01: "insufficient resources to create a session",
	0x02: "invalid session ID",
	0x03: "invalid payload type",
	0x04: "invalid authentication algorithm",
	0x05: "invalid integrity algorithm",
	0x06: "no matching authentication payload",
	0x07: "no matching integrity payload",
	0x08: "inactive session ID",
	0x09: "invalid role",
	0x0A: "unauthorized role or privilege level requested",
	0x0B: "insufficient resources to create a session at the requested role",
	0x0C: "invalid name length",
	0x0D: "unauthorized name",
	0x0E: "unauthorized GUID",
	0x0F: "invalid integrity check value",
	0x10: "invalid confidentiality algorithm",
	0x11: "no cipher suite match with proposed security algorithms",
	0x12: "illegal or unrecognized parameter",
}

// Status codes callers branch on.
const (
	StatusUnauthorizedName StatusCode = 0x0D
	StatusInvalidICV       StatusCode = 0x0F
	StatusNoCipherSuite    StatusCode = 0x11
)

func (c StatusCode) Error() string {
	if t, ok := statusText[c]; ok {
		return fmt.Sprintf("RMCP+ status 0x%02X (%s)", uint8(c), t)
	}
	return fmt.Sprintf("RMCP+ status 0x%02X", uint8(c))
}

// OpenSessionRequest is the RMCP+ Open Session Request payload.
type OpenSessionRequest struct {
	Tag              uint8
	MaxPrivilege     Privilege // 0 asks for the highest the proposed algorithms allow
	ConsoleSessionID uint32
	Suite            CipherSuite
}

// Append appends the payload to dst.
func (r OpenSessionRequest) Append(dst []byte) ([]byte, error) {
	a, i, c, err := r.Suite.Algorithms()
	if err != nil {
		return dst, err
	}
	dst = append(dst, r.Tag, byte(r.MaxPrivilege), 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, r.ConsoleSessionID)
	dst = append(dst, 0x00, 0, 0, 8, a, 0, 0, 0)
	dst = append(dst, 0x01, 0, 0, 8, i, 0, 0, 0)
	dst = append(dst, 0x02, 0, 0, 8, c, 0, 0, 0)
	return dst, nil
}

// ParseOpenSessionRequest parses the payload (the BMC side).
func ParseOpenSessionRequest(b []byte) (OpenSessionRequest, error) {
	if len(b) < 32 {
		return OpenSessionRequest{}, fmt.Errorf("ipmi: open session request of %d bytes: %w", len(b), ErrShort)
	}
	r := OpenSessionRequest{Tag: b[0], MaxPrivilege: Privilege(b[1] & 0x0F), ConsoleSessionID: binary.LittleEndian.Uint32(b[4:])}
	a, i, c := b[12], b[20], b[28]
	for _, s := range []CipherSuite{CipherSuite3, CipherSuite17} {
		if sa, si, sc, _ := s.Algorithms(); sa == a && si == i && sc == c {
			r.Suite = s
			return r, nil
		}
	}
	return r, fmt.Errorf("%w: algorithms %d/%d/%d", ErrCipherSuite, a, i, c)
}

// OpenSessionResponse is the RMCP+ Open Session Response payload.
type OpenSessionResponse struct {
	Tag              uint8
	Status           StatusCode
	MaxPrivilege     Privilege
	ConsoleSessionID uint32
	BMCSessionID     uint32
	Suite            CipherSuite
}

// Append appends the payload to dst (the BMC side). A non-zero status is sent short.
func (r OpenSessionResponse) Append(dst []byte) []byte {
	dst = append(dst, r.Tag, byte(r.Status), byte(r.MaxPrivilege), 0)
	dst = binary.LittleEndian.AppendUint32(dst, r.ConsoleSessionID)
	if r.Status != 0 {
		return dst
	}
	dst = binary.LittleEndian.AppendUint32(dst, r.BMCSessionID)
	a, i, c, _ := r.Suite.Algorithms()
	dst = append(dst, 0x00, 0, 0, 8, a, 0, 0, 0)
	dst = append(dst, 0x01, 0, 0, 8, i, 0, 0, 0)
	return append(dst, 0x02, 0, 0, 8, c, 0, 0, 0)
}

// ParseOpenSessionResponse parses the payload. A non-zero status is returned as the
// error (a StatusCode) together with the fields that were read.
func ParseOpenSessionResponse(b []byte) (OpenSessionResponse, error) {
	if len(b) >= 2 && b[1] != 0 {
		// An error answer; some BMCs (ipmi_sim) cut it short.
		r := OpenSessionResponse{Tag: b[0], Status: StatusCode(b[1])}
		if len(b) >= 8 {
			r.MaxPrivilege, r.ConsoleSessionID = Privilege(b[2]&0x0F), binary.LittleEndian.Uint32(b[4:])
		}
		return r, r.Status
	}
	if len(b) < 8 {
		return OpenSessionResponse{}, fmt.Errorf("ipmi: open session response of %d bytes: %w", len(b), ErrShort)
	}
	r := OpenSessionResponse{Tag: b[0], Status: StatusCode(b[1]), MaxPrivilege: Privilege(b[2] & 0x0F), ConsoleSessionID: binary.LittleEndian.Uint32(b[4:])}
	if len(b) < 36 {
		return r, fmt.Errorf("ipmi: open session response of %d bytes: %w", len(b), ErrShort)
	}
	r.BMCSessionID = binary.LittleEndian.Uint32(b[8:])
	a, i, c := b[16], b[24], b[32]
	for _, s := range []CipherSuite{CipherSuite3, CipherSuite17} {
		if sa, si, sc, _ := s.Algorithms(); sa == a && si == i && sc == c {
			r.Suite = s
			return r, nil
		}
	}
	return r, fmt.Errorf("%w: BMC chose algorithms %d/%d/%d", ErrCipherSuite, a, i, c)
}

// RAKP1 is the RAKP Message 1 payload (console to BMC).
type RAKP1 struct {
	Tag           uint8
	BMCSessionID  uint32
	ConsoleRandom [16]byte
	Role          uint8 // privilege level, optionally | NameOnlyLookup
	User          string
}

// Append appends the payload to dst.
func (r RAKP1) Append(dst []byte) ([]byte, error) {
	if len(r.User) > MaxUserLen {
		return dst, fmt.Errorf("ipmi: user name of %d bytes is longer than %d", len(r.User), MaxUserLen)
	}
	dst = append(dst, r.Tag, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, r.BMCSessionID)
	dst = append(dst, r.ConsoleRandom[:]...)
	dst = append(dst, r.Role, 0, 0, byte(len(r.User)))
	return append(dst, r.User...), nil
}

// ParseRAKP1 parses the payload (the BMC side).
func ParseRAKP1(b []byte) (RAKP1, error) {
	if len(b) < 28 {
		return RAKP1{}, fmt.Errorf("ipmi: RAKP 1 of %d bytes: %w", len(b), ErrShort)
	}
	r := RAKP1{Tag: b[0], BMCSessionID: binary.LittleEndian.Uint32(b[4:]), Role: b[24]}
	copy(r.ConsoleRandom[:], b[8:24])
	n := int(b[27])
	if n > MaxUserLen || len(b) < 28+n {
		return r, fmt.Errorf("ipmi: RAKP 1 user name length %d is invalid", n)
	}
	r.User = string(b[28 : 28+n])
	return r, nil
}

// RAKP2 is the RAKP Message 2 payload (BMC to console).
type RAKP2 struct {
	Tag              uint8
	Status           StatusCode
	ConsoleSessionID uint32
	BMCRandom        [16]byte
	BMCGUID          [16]byte
	AuthCode         []byte
}

// Append appends the payload to dst (the BMC side).
func (r RAKP2) Append(dst []byte) []byte {
	dst = append(dst, r.Tag, byte(r.Status), 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, r.ConsoleSessionID)
	if r.Status != 0 {
		return dst
	}
	dst = append(dst, r.BMCRandom[:]...)
	dst = append(dst, r.BMCGUID[:]...)
	return append(dst, r.AuthCode...)
}

// ParseRAKP2 parses the payload. A non-zero status is returned as the error.
func ParseRAKP2(b []byte) (RAKP2, error) {
	if len(b) >= 2 && b[1] != 0 && len(b) < 8 {
		return RAKP2{Tag: b[0], Status: StatusCode(b[1])}, StatusCode(b[1]) // a short error answer
	}
	if len(b) < 8 {
		return RAKP2{}, fmt.Errorf("ipmi: RAKP 2 of %d bytes: %w", len(b), ErrShort)
	}
	r := RAKP2{Tag: b[0], Status: StatusCode(b[1]), ConsoleSessionID: binary.LittleEndian.Uint32(b[4:])}
	if r.Status != 0 {
		return r, r.Status
	}
	if len(b) < 40 {
		return r, fmt.Errorf("ipmi: RAKP 2 of %d bytes: %w", len(b), ErrShort)
	}
	copy(r.BMCRandom[:], b[8:24])
	copy(r.BMCGUID[:], b[24:40])
	r.AuthCode = b[40:]
	return r, nil
}

// RAKP3 is the RAKP Message 3 payload (console to BMC).
type RAKP3 struct {
	Tag          uint8
	Status       StatusCode
	BMCSessionID uint32
	AuthCode     []byte
}

// Append appends the payload to dst.
func (r RAKP3) Append(dst []byte) []byte {
	dst = append(dst, r.Tag, byte(r.Status), 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, r.BMCSessionID)
	return append(dst, r.AuthCode...)
}

// ParseRAKP3 parses the payload (the BMC side). A non-zero status is returned as the error.
func ParseRAKP3(b []byte) (RAKP3, error) {
	if len(b) < 8 {
		return RAKP3{}, fmt.Errorf("ipmi: RAKP 3 of %d bytes: %w", len(b), ErrShort)
	}
	r := RAKP3{Tag: b[0], Status: StatusCode(b[1]), BMCSessionID: binary.LittleEndian.Uint32(b[4:]), AuthCode: b[8:]}
	if r.Status != 0 {
		return r, r.Status
	}
	return r, nil
}

// RAKP4 is the RAKP Message 4 payload (BMC to console).
type RAKP4 struct {
	Tag              uint8
	Status           StatusCode
	ConsoleSessionID uint32
	ICV              []byte
}

// Append appends the payload to dst (the BMC side).
func (r RAKP4) Append(dst []byte) []byte {
	dst = append(dst, r.Tag, byte(r.Status), 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, r.ConsoleSessionID)
	return append(dst, r.ICV...)
}

// ParseRAKP4 parses the payload. A non-zero status is returned as the error.
func ParseRAKP4(b []byte) (RAKP4, error) {
	if len(b) >= 2 && b[1] != 0 && len(b) < 8 {
		return RAKP4{Tag: b[0], Status: StatusCode(b[1])}, StatusCode(b[1]) // a short error answer
	}
	if len(b) < 8 {
		return RAKP4{}, fmt.Errorf("ipmi: RAKP 4 of %d bytes: %w", len(b), ErrShort)
	}
	r := RAKP4{Tag: b[0], Status: StatusCode(b[1]), ConsoleSessionID: binary.LittleEndian.Uint32(b[4:]), ICV: b[8:]}
	if r.Status != 0 {
		return r, r.Status
	}
	return r, nil
}

// Handshake holds what both ends know after RAKP 2 and computes the authentication codes
// and session keys of IPMI v2.0 section 13.31. Password is K_UID; BMCKey is K_G (empty
// when the BMC has no key set, the usual case, and then K_UID is used in its place).
type Handshake struct {
	Suite            CipherSuite
	Password         []byte
	BMCKey           []byte
	ConsoleSessionID uint32
	BMCSessionID     uint32
	ConsoleRandom    [16]byte
	BMCRandom        [16]byte
	BMCGUID          [16]byte
	Role             uint8
	User             string
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func (h *Handshake) userBytes() []byte {
	return append([]byte{h.Role, byte(len(h.User))}, h.User...)
}

// RAKP2AuthCode is HMAC(K_UID, SID_M | SID_C | R_M | R_C | GUID_C | ROLE_M | ULENGTH_M | UNAME_M).
func (h *Handshake) RAKP2AuthCode() []byte {
	return hmacSum(h.Suite.hash(), h.Password, le32(h.ConsoleSessionID), le32(h.BMCSessionID),
		h.ConsoleRandom[:], h.BMCRandom[:], h.BMCGUID[:], h.userBytes())
}

// RAKP3AuthCode is HMAC(K_UID, R_C | SID_M | ROLE_M | ULENGTH_M | UNAME_M).
func (h *Handshake) RAKP3AuthCode() []byte {
	return hmacSum(h.Suite.hash(), h.Password, h.BMCRandom[:], le32(h.ConsoleSessionID), h.userBytes())
}

// SIK is the session integrity key: HMAC(K_G, R_M | R_C | ROLE_M | ULENGTH_M | UNAME_M).
func (h *Handshake) SIK() []byte {
	kg := h.BMCKey
	if len(kg) == 0 {
		kg = h.Password
	}
	return hmacSum(h.Suite.hash(), kg, h.ConsoleRandom[:], h.BMCRandom[:], h.userBytes())
}

// RAKP4ICV is HMAC(SIK, R_M | SID_C | GUID_C), truncated to the suite's integrity length.
func (h *Handshake) RAKP4ICV() []byte {
	return hmacSum(h.Suite.hash(), h.SIK(), h.ConsoleRandom[:], le32(h.BMCSessionID), h.BMCGUID[:])[:h.Suite.integrityLen()]
}

// Keys derives the session keys.
func (h *Handshake) Keys() (*Keys, error) { return NewKeys(h.Suite, h.SIK()) }

// ErrAuthCode reports a RAKP 2 whose authentication code does not match: the password
// (or the BMC key) is wrong.
var ErrAuthCode = errors.New("ipmi: RAKP 2 authentication code mismatch (wrong password or BMC key)")

// ErrICV reports a RAKP 4 whose integrity check value does not match.
var ErrICV = errors.New("ipmi: RAKP 4 integrity check value mismatch")

// CheckRAKP2 compares the BMC's authentication code with the expected one.
func (h *Handshake) CheckRAKP2(code []byte) error {
	if !hmac.Equal(code, h.RAKP2AuthCode()) {
		return ErrAuthCode
	}
	return nil
}

// CheckRAKP4 compares the BMC's integrity check value with the expected one.
func (h *Handshake) CheckRAKP4(icv []byte) error {
	if !hmac.Equal(icv, h.RAKP4ICV()) {
		return ErrICV
	}
	return nil
}
