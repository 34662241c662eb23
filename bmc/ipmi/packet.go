package ipmi

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// RMCP header fields of an IPMI packet.
const (
	rmcpVersion  = 0x06
	rmcpNoAck    = 0xFF
	rmcpClassIPM = 0x07

	// AuthTypeRMCPPlus marks an IPMI v2.0 (RMCP+) session header.
	AuthTypeRMCPPlus = 0x06

	rmcpHeaderLen    = 4
	sessionHeaderLen = 12 // auth type, payload type, session ID, sequence, length
)

// PayloadType is the RMCP+ payload type of a packet.
type PayloadType uint8

// Payload types of the IPMI v2.0 session set-up and of IPMI messages.
const (
	PayloadIPMI                PayloadType = 0x00
	PayloadOpenSessionRequest  PayloadType = 0x10
	PayloadOpenSessionResponse PayloadType = 0x11
	PayloadRAKP1               PayloadType = 0x12
	PayloadRAKP2               PayloadType = 0x13
	PayloadRAKP3               PayloadType = 0x14
	PayloadRAKP4               PayloadType = 0x15

	payloadEncrypted     = 0x80
	payloadAuthenticated = 0x40
)

// CipherSuite is an IPMI v2.0 cipher suite ID. Suites 3 and 17 are supported.
type CipherSuite uint8

// Supported cipher suites.
const (
	// CipherSuite3 is RAKP-HMAC-SHA1, HMAC-SHA1-96 integrity, AES-CBC-128: what every
	// IPMI 2.0 BMC supports and what ipmitool -C 3 selects.
	CipherSuite3 CipherSuite = 3
	// CipherSuite17 is RAKP-HMAC-SHA256, HMAC-SHA256-128 integrity, AES-CBC-128.
	CipherSuite17 CipherSuite = 17
)

// ErrCipherSuite reports a cipher suite this codec does not implement.
var ErrCipherSuite = errors.New("ipmi: unsupported cipher suite (want 3 or 17)")

// Algorithms returns the suite's authentication, integrity and confidentiality algorithm
// numbers as they appear in the Open Session messages.
func (c CipherSuite) Algorithms() (auth, integrity, conf uint8, err error) {
	switch c {
	case CipherSuite3:
		return 0x01, 0x01, 0x01, nil
	case CipherSuite17:
		return 0x03, 0x04, 0x01, nil
	}
	return 0, 0, 0, fmt.Errorf("%w: %d", ErrCipherSuite, c)
}

func (c CipherSuite) hash() func() hash.Hash {
	if c == CipherSuite17 {
		return sha256.New
	}
	return sha1.New
}

// integrityLen is the length of the AuthCode trailer and of the RAKP 4 ICV.
func (c CipherSuite) integrityLen() int {
	if c == CipherSuite17 {
		return 16
	}
	return 12
}

// Keys are what a session uses after the RAKP handshake: K1 signs packets, the AES key
// (the first 16 bytes of K2) encrypts payloads.
type Keys struct {
	Suite  CipherSuite
	K1     []byte
	AESKey []byte

	block cipher.Block
}

// NewKeys derives K1 and K2 from the session integrity key (SIK).
func NewKeys(suite CipherSuite, sik []byte) (*Keys, error) {
	if _, _, _, err := suite.Algorithms(); err != nil {
		return nil, err
	}
	h := suite.hash()
	n := h().Size()
	k1 := hmacSum(h, sik, repeat(0x01, n))
	k2 := hmacSum(h, sik, repeat(0x02, n))
	block, err := aes.NewCipher(k2[:16])
	if err != nil {
		return nil, err
	}
	return &Keys{Suite: suite, K1: k1, AESKey: k2[:16], block: block}, nil
}

func repeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func hmacSum(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// A Packet is one RMCP+ packet: the session header fields and the (clear) payload.
type Packet struct {
	Type          PayloadType
	Encrypted     bool
	Authenticated bool
	SessionID     uint32
	Seq           uint32
	Payload       []byte
}

// AppendPacket appends the wire form of p to dst. An encrypted payload needs keys and a
// source of random IVs; an authenticated one needs keys.
func AppendPacket(dst []byte, p Packet, k *Keys, random io.Reader) ([]byte, error) {
	if (p.Encrypted || p.Authenticated) && k == nil {
		return dst, errors.New("ipmi: encrypted or authenticated packet without session keys")
	}
	start := len(dst)
	dst = append(dst, rmcpVersion, 0, rmcpNoAck, rmcpClassIPM)
	sess := len(dst)
	pt := byte(p.Type) & 0x3F
	if p.Encrypted {
		pt |= payloadEncrypted
	}
	if p.Authenticated {
		pt |= payloadAuthenticated
	}
	dst = append(dst, AuthTypeRMCPPlus, pt)
	dst = binary.LittleEndian.AppendUint32(dst, p.SessionID)
	dst = binary.LittleEndian.AppendUint32(dst, p.Seq)
	lenAt := len(dst)
	dst = append(dst, 0, 0)
	body := len(dst)
	if p.Encrypted {
		var err error
		if dst, err = k.encrypt(dst, p.Payload, random); err != nil {
			return dst[:start], err
		}
	} else {
		dst = append(dst, p.Payload...)
	}
	n := len(dst) - body
	if n > 0xFFFF {
		return dst[:start], fmt.Errorf("ipmi: payload of %d bytes is too long", n)
	}
	binary.LittleEndian.PutUint16(dst[lenAt:], uint16(n))
	if !p.Authenticated {
		return dst, nil
	}
	// Integrity pad so that auth type .. next header is a multiple of 4 bytes.
	pad := (4 - (len(dst)-sess+2)%4) % 4
	for range pad {
		dst = append(dst, 0xFF)
	}
	dst = append(dst, byte(pad), rmcpClassIPM)
	mac := hmacSum(k.Suite.hash(), k.K1, dst[sess:])
	return append(dst, mac[:k.Suite.integrityLen()]...), nil
}

func (k *Keys) encrypt(dst, clear []byte, random io.Reader) ([]byte, error) {
	if random == nil {
		return dst, errors.New("ipmi: no random source for the IV")
	}
	pad := (16 - (len(clear)+1)%16) % 16
	total := 16 + len(clear) + pad + 1
	start := len(dst)
	dst = append(dst, make([]byte, total)...)
	out := dst[start:]
	if _, err := io.ReadFull(random, out[:16]); err != nil {
		return dst[:start], fmt.Errorf("ipmi: IV: %w", err)
	}
	copy(out[16:], clear)
	for i := range pad {
		out[16+len(clear)+i] = byte(i + 1)
	}
	out[total-1] = byte(pad)
	cipher.NewCBCEncrypter(k.block, out[:16]).CryptBlocks(out[16:], out[16:])
	return dst, nil
}

// decrypt decrypts an encrypted payload in place and returns the clear data.
func (k *Keys) decrypt(b []byte) ([]byte, error) {
	if len(b) < 32 || (len(b)-16)%16 != 0 {
		return nil, fmt.Errorf("ipmi: encrypted payload of %d bytes is not IV plus whole AES blocks", len(b))
	}
	data := b[16:]
	cipher.NewCBCDecrypter(k.block, b[:16]).CryptBlocks(data, data)
	pad := int(data[len(data)-1])
	if pad >= 16 || pad+1 > len(data) {
		return nil, fmt.Errorf("ipmi: confidentiality pad length %d is invalid", pad)
	}
	n := len(data) - 1 - pad
	for i := range pad {
		if data[n+i] != byte(i+1) {
			return nil, errors.New("ipmi: confidentiality pad bytes are invalid")
		}
	}
	return data[:n], nil
}

// ErrIntegrity reports a packet whose AuthCode does not match its contents.
var ErrIntegrity = errors.New("ipmi: packet integrity check failed")

// ParsePacket parses an RMCP+ packet. Authenticated packets are checked and encrypted
// payloads decrypted with k (which may be nil for the session set-up messages). The
// payload aliases b, which an encrypted payload is decrypted in.
func ParsePacket(b []byte, k *Keys) (Packet, error) {
	if len(b) < rmcpHeaderLen+sessionHeaderLen {
		return Packet{}, fmt.Errorf("ipmi: packet of %d bytes: %w", len(b), ErrShort)
	}
	if b[0] != rmcpVersion || b[3] != rmcpClassIPM {
		return Packet{}, fmt.Errorf("ipmi: not an RMCP IPMI packet (version 0x%02X, class 0x%02X)", b[0], b[3])
	}
	s := b[rmcpHeaderLen:]
	if s[0] != AuthTypeRMCPPlus {
		return Packet{}, fmt.Errorf("ipmi: auth type 0x%02X is not RMCP+ (IPMI v1.5 sessions are not supported)", s[0])
	}
	p := Packet{
		Type:          PayloadType(s[1] & 0x3F),
		Encrypted:     s[1]&payloadEncrypted != 0,
		Authenticated: s[1]&payloadAuthenticated != 0,
		SessionID:     binary.LittleEndian.Uint32(s[2:]),
		Seq:           binary.LittleEndian.Uint32(s[6:]),
	}
	if p.Type == 0x02 {
		return Packet{}, errors.New("ipmi: OEM explicit payloads are not supported")
	}
	n := int(binary.LittleEndian.Uint16(s[10:]))
	if sessionHeaderLen+n > len(s) {
		return Packet{}, fmt.Errorf("ipmi: payload length %d exceeds the %d bytes received: %w", n, len(s)-sessionHeaderLen, ErrShort)
	}
	payload := s[sessionHeaderLen : sessionHeaderLen+n]
	if p.Authenticated {
		if k == nil {
			return Packet{}, errors.New("ipmi: authenticated packet before the session has keys")
		}
		il := k.Suite.integrityLen()
		trailer := s[sessionHeaderLen+n:]
		if len(trailer) < 2+il {
			return Packet{}, fmt.Errorf("ipmi: session trailer of %d bytes: %w", len(trailer), ErrShort)
		}
		covered := s[:len(s)-il]
		want := hmacSum(k.Suite.hash(), k.K1, covered)[:il]
		if subtle.ConstantTimeCompare(want, s[len(s)-il:]) != 1 {
			return Packet{}, ErrIntegrity
		}
		pad := int(covered[len(covered)-2])
		if pad > 3 || sessionHeaderLen+n+pad+2 != len(covered) {
			return Packet{}, fmt.Errorf("ipmi: integrity pad length %d does not match the packet", pad)
		}
	}
	if p.Encrypted {
		if k == nil {
			return Packet{}, errors.New("ipmi: encrypted packet before the session has keys")
		}
		clear, err := k.decrypt(payload)
		if err != nil {
			return Packet{}, err
		}
		payload = clear
	}
	p.Payload = payload
	return p, nil
}

func (c CipherSuite) String() string { return fmt.Sprintf("cipher suite %d", uint8(c)) }
