package ipmi

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// FuzzParsePacket: no input panics, and what parses re-encodes to a packet that parses
// to the same thing.
func FuzzParsePacket(f *testing.F) {
	k, _ := NewKeys(CipherSuite3, []byte("fuzz"))
	for _, p := range []Packet{
		{Type: PayloadIPMI, Encrypted: true, Authenticated: true, SessionID: 1, Seq: 2, Payload: AppendResponse(nil, Response{NetFn: 1, Cmd: 1, Data: []byte{1, 0, 0}})},
		{Type: PayloadIPMI, Authenticated: true, SessionID: 1, Seq: 2, Payload: []byte{1, 2, 3}},
		{Type: PayloadOpenSessionResponse, Payload: OpenSessionResponse{Suite: CipherSuite3, BMCSessionID: 4}.Append(nil)},
		{Type: PayloadRAKP2, Payload: RAKP2{AuthCode: make([]byte, 20)}.Append(nil)},
	} {
		b, _ := AppendPacket(nil, p, k, rand.Reader)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(append([]byte(nil), b...), k)
		if err != nil {
			return
		}
		out, err := AppendPacket(nil, p, k, rand.Reader)
		if err != nil {
			t.Fatalf("AppendPacket(%+v): %v", p, err)
		}
		q, err := ParsePacket(out, k)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if q.Type != p.Type || q.SessionID != p.SessionID || q.Seq != p.Seq || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatalf("round trip: %+v != %+v", q, p)
		}
	})
}

// FuzzParseResponse: no input panics, and a parsed response re-encodes byte for byte.
func FuzzParseResponse(f *testing.F) {
	f.Add(AppendResponse(nil, Response{NetFn: 1, Cmd: 1, Seq: 3, Data: []byte{0x41, 0, 0}}))
	f.Add(AppendResponse(nil, Response{NetFn: 7, Cmd: 0x3C, Code: 0xC1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			return
		}
		// The responder/requester address bytes and LUNs are not kept: compare the rest.
		out := AppendResponse(nil, r)
		if r2, err := ParseResponse(out); err != nil || r2.Cmd != r.Cmd || r2.Seq != r.Seq || r2.Code != r.Code || !bytes.Equal(r2.Data, r.Data) {
			t.Fatalf("round trip: %+v vs %+v (%v)", r2, r, err)
		}
		ParseChassisStatus(r.Data)
		ParseBootFlags(r.Data)
	})
}

// FuzzParseSetup covers the session set-up messages a BMC (or an impostor) sends back.
func FuzzParseSetup(f *testing.F) {
	f.Add(OpenSessionResponse{Suite: CipherSuite17, BMCSessionID: 4}.Append(nil))
	f.Add(RAKP2{AuthCode: make([]byte, 20)}.Append(nil))
	f.Add(RAKP4{ICV: make([]byte, 12)}.Append(nil))
	r1, _ := RAKP1{User: "admin"}.Append(nil)
	f.Add(r1)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseOpenSessionResponse(b); err == nil {
			if got, err := ParseOpenSessionResponse(r.Append(nil)); err != nil || got != r {
				t.Fatalf("open session response round trip: %+v %v", got, err)
			}
		}
		if r, err := ParseRAKP2(b); err == nil {
			if got, err := ParseRAKP2(r.Append(nil)); err != nil || got.BMCRandom != r.BMCRandom || !bytes.Equal(got.AuthCode, r.AuthCode) {
				t.Fatalf("RAKP 2 round trip: %+v %v", got, err)
			}
		}
		if r, err := ParseRAKP1(b); err == nil {
			out, err := r.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ParseRAKP1(out); err != nil || got != r {
				t.Fatalf("RAKP 1 round trip: %+v %v", got, err)
			}
		}
		ParseRAKP3(b)
		ParseRAKP4(b)
		ParseOpenSessionRequest(b)
		ParseRequest(b)
	})
}
