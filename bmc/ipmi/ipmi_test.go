package ipmi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testHandshake(suite CipherSuite) Handshake {
	h := Handshake{Suite: suite, Password: []byte("pass"), User: "admin", Role: 0x14,
		ConsoleSessionID: 0x11223344, BMCSessionID: 0xa1b2c3d4}
	for i := range 16 {
		h.ConsoleRandom[i] = byte(i)
		h.BMCRandom[i] = byte(16 + i)
		h.BMCGUID[i] = byte(32 + i)
	}
	return h
}

// TestHandshakeVectors checks the RAKP codes and session keys against values computed
// independently (Python's hmac and hashlib, IPMI v2.0 section 13.31 formulas).
func TestHandshakeVectors(t *testing.T) {
	tests := []struct {
		suite                           CipherSuite
		rakp2, rakp3, sik, k1, aes, icv string
	}{
		{CipherSuite3, "2d501c6863d8fbbf01c2d1b19684cfb6283c585e", "86e522661cd791f7241ffcea1fe4264164c8329e",
			"36f80fab2180f1b34a63f162de5bcc2534b94bc3", "fab78f43f110e1d46d996556dfe105c328c155df",
			"63e7fe3ed9ed0cd13a149bef59b47d62", "8a0c39402450b539366fff9c"},
		{CipherSuite17, "0f1197c7fecd74e5f6a8ab3471c27a0264e8827e1df3917a22dc43aabb9d1446",
			"50f25e53c688ba7a1e6dcfd7f553364875132dda4a6ccd8f9f787239058827cc",
			"e70c145293a3b952eebf804394c46ac0b6c21a88ee558d1cd8732283bac67fdc",
			"6dec63f7ad514d5b7a7def5b5922383a10f05f17db14841fefa48d8ee57bc99a",
			"682196013094a42fa78c99833067d958", "042837926c7c1616fdf13adc452f7b05"},
	}
	for _, tt := range tests {
		h := testHandshake(tt.suite)
		k, err := h.Keys()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{"rakp2": hex.EncodeToString(h.RAKP2AuthCode()), "rakp3": hex.EncodeToString(h.RAKP3AuthCode()),
			"sik": hex.EncodeToString(h.SIK()), "k1": hex.EncodeToString(k.K1), "aes": hex.EncodeToString(k.AESKey),
			"icv": hex.EncodeToString(h.RAKP4ICV())}
		want := map[string]string{"rakp2": tt.rakp2, "rakp3": tt.rakp3, "sik": tt.sik, "k1": tt.k1, "aes": tt.aes, "icv": tt.icv}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("suite %d (-want +got):\n%s", tt.suite, d)
		}
		if err := h.CheckRAKP2(unhex(t, tt.rakp2)); err != nil {
			t.Errorf("CheckRAKP2(good) = %v", err)
		}
		h2 := h
		h2.Password = []byte("wrong")
		if err := h2.CheckRAKP2(unhex(t, tt.rakp2)); !errors.Is(err, ErrAuthCode) {
			t.Errorf("CheckRAKP2 with wrong password = %v, want ErrAuthCode", err)
		}
		if err := h.CheckRAKP4(unhex(t, tt.icv)); err != nil {
			t.Errorf("CheckRAKP4(good) = %v", err)
		}
	}
}

func TestBMCKeyChangesSIKOnly(t *testing.T) {
	h := testHandshake(CipherSuite3)
	a, b := h.RAKP2AuthCode(), h.SIK()
	h.BMCKey = []byte("kg")
	if !bytes.Equal(a, h.RAKP2AuthCode()) || bytes.Equal(b, h.SIK()) {
		t.Error("K_G must change the SIK and nothing else")
	}
}

func TestRequestResponseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		req  Request
	}{
		{"no data", Request{NetFn: NetFnChassis, Cmd: CmdGetChassisStatus, Seq: 1}},
		{"data", Request{NetFn: NetFnChassis, Cmd: CmdChassisControl, Seq: 63, Data: []byte{1}}},
		{"app", Request{NetFn: NetFnApp, Cmd: CmdCloseSession, Seq: 7, Data: []byte{1, 2, 3, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendRequest(nil, tt.req)
			got, err := ParseRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.req, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); d != "" {
				t.Errorf("request round trip (-want +got):\n%s", d)
			}
			resp := Response{NetFn: tt.req.NetFn + 1, Cmd: tt.req.Cmd, Seq: tt.req.Seq, Code: 0xC1, Data: tt.req.Data}
			rb := AppendResponse(nil, resp)
			gr, err := ParseResponse(rb)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(resp, gr, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); d != "" {
				t.Errorf("response round trip (-want +got):\n%s", d)
			}
			rb[len(rb)-1]++
			if _, err := ParseResponse(rb); !errors.Is(err, ErrChecksum) {
				t.Errorf("ParseResponse(bad checksum) = %v, want ErrChecksum", err)
			}
		})
	}
}

func TestParseResponseShort(t *testing.T) {
	if _, err := ParseResponse([]byte{1, 2, 3}); !errors.Is(err, ErrShort) {
		t.Errorf("ParseResponse(3 bytes) = %v, want ErrShort", err)
	}
}

func TestCompletionCodeError(t *testing.T) {
	var err error = CompletionCode(0xD4)
	if got, want := err.Error(), "completion code 0xD4 (insufficient privilege level)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var cc CompletionCode
	if !errors.As(err, &cc) || cc != CodeInsufficientPriv {
		t.Errorf("errors.As = %v", cc)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	for _, suite := range []CipherSuite{CipherSuite3, CipherSuite17} {
		h := testHandshake(suite)
		k, err := h.Keys()
		if err != nil {
			t.Fatal(err)
		}
		for n := range 40 {
			payload := bytes.Repeat([]byte{byte(n)}, n)
			for _, p := range []Packet{
				{Type: PayloadIPMI, Encrypted: true, Authenticated: true, SessionID: 9, Seq: uint32(n), Payload: payload},
				{Type: PayloadIPMI, Authenticated: true, SessionID: 9, Seq: 1, Payload: payload},
				{Type: PayloadRAKP1, Payload: payload},
			} {
				b, err := AppendPacket([]byte{0xAA}, p, k, rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ParsePacket(b[1:], k)
				if err != nil {
					t.Fatalf("suite %d len %d %+v: %v", suite, n, p, err)
				}
				if got.Payload == nil {
					got.Payload = []byte{}
				}
				p.Payload = append([]byte{}, payload...)
				if d := cmp.Diff(p, got); d != "" {
					t.Errorf("suite %d len %d (-want +got):\n%s", suite, n, d)
				}
			}
			// Any flipped bit in an authenticated packet is caught.
			b, _ := AppendPacket(nil, Packet{Type: PayloadIPMI, Encrypted: true, Authenticated: true, SessionID: 1, Seq: 1, Payload: payload}, k, rand.Reader)
			b[len(b)/2] ^= 0x10
			if _, err := ParsePacket(b, k); !errors.Is(err, ErrIntegrity) {
				t.Errorf("suite %d len %d: tampered packet: %v, want ErrIntegrity", suite, n, err)
			}
		}
	}
}

func TestParsePacketErrors(t *testing.T) {
	k, _ := NewKeys(CipherSuite3, []byte("sik"))
	good, _ := AppendPacket(nil, Packet{Type: PayloadIPMI, Encrypted: true, Authenticated: true, SessionID: 1, Seq: 1, Payload: []byte{1, 2}}, k, rand.Reader)
	v15 := append([]byte{6, 0, 0xFF, 7, 0x00}, make([]byte, 20)...)
	tests := []struct {
		name string
		b    []byte
		keys *Keys
	}{
		{"empty", nil, k},
		{"not rmcp", append([]byte{5}, good[1:]...), k},
		{"ipmi 1.5", v15, k},
		{"no keys", good, nil},
		{"length too long", func() []byte { b := append([]byte(nil), good...); b[14] = 0xFF; return b }(), k},
		{"truncated", good[:len(good)-3], k},
	}
	for _, tt := range tests {
		if _, err := ParsePacket(tt.b, tt.keys); err == nil {
			t.Errorf("ParsePacket(%s) succeeded", tt.name)
		}
	}
}

func TestSetupMessagesRoundTrip(t *testing.T) {
	osr := OpenSessionRequest{Tag: 3, MaxPrivilege: PrivAdmin, ConsoleSessionID: 0xdeadbeef, Suite: CipherSuite17}
	b, err := osr.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseOpenSessionRequest(b); err != nil || got != osr {
		t.Errorf("open session request: %+v, %v", got, err)
	}
	resp := OpenSessionResponse{Tag: 3, MaxPrivilege: PrivAdmin, ConsoleSessionID: 1, BMCSessionID: 2, Suite: CipherSuite3}
	if got, err := ParseOpenSessionResponse(resp.Append(nil)); err != nil || got != resp {
		t.Errorf("open session response: %+v, %v", got, err)
	}
	bad := OpenSessionResponse{Tag: 3, Status: StatusNoCipherSuite, ConsoleSessionID: 1}
	if _, err := ParseOpenSessionResponse(bad.Append(nil)); !errors.Is(err, StatusNoCipherSuite) {
		t.Errorf("status 0x11: %v", err)
	}
	// ipmi_sim answers an unsupported suite with just the tag and the status.
	if r, err := ParseOpenSessionResponse([]byte{0, 0x04}); !errors.Is(err, StatusCode(0x04)) || r.Status != 0x04 {
		t.Errorf("short error answer: %+v, %v", r, err)
	}
	if _, err := ParseRAKP2([]byte{1, 0x0D, 0}); !errors.Is(err, StatusUnauthorizedName) {
		t.Errorf("short RAKP 2 error answer: %v", err)
	}
	r1 := RAKP1{Tag: 1, BMCSessionID: 5, Role: 0x14, User: "admin"}
	r1.ConsoleRandom[3] = 9
	b, err = r1.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseRAKP1(b); err != nil || got != r1 {
		t.Errorf("RAKP 1: %+v, %v", got, err)
	}
	if _, err := (RAKP1{User: "a-very-long-user-name"}).Append(nil); err == nil {
		t.Error("RAKP 1 with a 21-byte user name succeeded")
	}
	r2 := RAKP2{Tag: 1, ConsoleSessionID: 7, AuthCode: []byte{1, 2, 3}}
	r2.BMCGUID[0] = 1
	got2, err := ParseRAKP2(r2.Append(nil))
	if err != nil || !cmp.Equal(got2, r2) {
		t.Errorf("RAKP 2: %+v, %v", got2, err)
	}
	if _, err := ParseRAKP2((RAKP2{Status: StatusUnauthorizedName}).Append(nil)); !errors.Is(err, StatusUnauthorizedName) {
		t.Errorf("RAKP 2 status 0x0D: %v", err)
	}
	r3 := RAKP3{Tag: 2, BMCSessionID: 5, AuthCode: []byte{9}}
	if got, err := ParseRAKP3(r3.Append(nil)); err != nil || !cmp.Equal(got, r3) {
		t.Errorf("RAKP 3: %+v, %v", got, err)
	}
	r4 := RAKP4{Tag: 2, ConsoleSessionID: 5, ICV: []byte{9, 8}}
	if got, err := ParseRAKP4(r4.Append(nil)); err != nil || !cmp.Equal(got, r4) {
		t.Errorf("RAKP 4: %+v, %v", got, err)
	}
}

func TestBootFlags(t *testing.T) {
	tests := []struct {
		name string
		f    BootFlags
		data []byte
	}{
		{"pxe once", BootFlags{Valid: true, Device: BootPXE}, []byte{0x80, 0x04, 0, 0, 0}},
		{"disk persistent efi", BootFlags{Valid: true, Persistent: true, EFI: true, Device: BootDisk}, []byte{0xE0, 0x08, 0, 0, 0}},
		{"cd", BootFlags{Valid: true, Device: BootCD}, []byte{0x80, 0x14, 0, 0, 0}},
		{"setup", BootFlags{Valid: true, Device: BootSetup}, []byte{0x80, 0x18, 0, 0, 0}},
		{"floppy", BootFlags{Valid: true, Device: BootFloppy}, []byte{0x80, 0x3C, 0, 0, 0}},
		{"clear", BootFlags{}, []byte{0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		if got := tt.f.Append(nil); !bytes.Equal(got, tt.data) {
			t.Errorf("%s: Append = % x, want % x", tt.name, got, tt.data)
		}
		got, err := ParseBootFlags(append([]byte{1, BootParamFlags}, tt.data...))
		if err != nil || got != tt.f {
			t.Errorf("%s: ParseBootFlags = %+v, %v", tt.name, got, err)
		}
	}
	if _, err := ParseBootFlags([]byte{1, 4, 0, 0}); err == nil {
		t.Error("ParseBootFlags of parameter 4 succeeded")
	}
}

func TestParseChassisStatus(t *testing.T) {
	got, err := ParseChassisStatus([]byte{0x41, 0x10, 0x00})
	want := ChassisStatus{PowerOn: true, RestorePolicy: 2, LastEvent: 0x10}
	if err != nil || got != want {
		t.Errorf("ParseChassisStatus = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ParseChassisStatus([]byte{1}); !errors.Is(err, ErrShort) {
		t.Errorf("ParseChassisStatus(1 byte) = %v, want ErrShort", err)
	}
}
