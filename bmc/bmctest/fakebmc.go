package bmctest

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/provkit/provkit/bmc/ipmi"
)

// FakeBMC is a small IPMI v2.0 LAN BMC in this process: RMCP+ session set-up (cipher
// suites 3 and 17), Set Session Privilege, Close Session, Get Chassis Status, Chassis
// Control, and boot options 3 and 5. It drops packets for sessions it does not know, as
// real BMCs do. It exists for tests that must run without ipmi_sim; the integration
// tests use ipmi_sim.
type FakeBMC struct {
	// User and Password are the one account. Set before the first packet arrives.
	User, Password string

	pc net.PacketConn
	wg sync.WaitGroup

	mu       sync.Mutex
	power    bool
	boot     ipmi.BootFlags
	commands []string
	drop     int
	sessions map[uint32]*fakeSession
	opened   int
}

type fakeSession struct {
	bmcID, consoleID uint32
	suite            ipmi.CipherSuite
	maxPriv, priv    ipmi.Privilege
	hs               ipmi.Handshake
	keys             *ipmi.Keys
	seq              uint32
}

// NewFakeBMC starts a fake BMC on a loopback port. Close stops it.
func NewFakeBMC(user, password string) (*FakeBMC, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &FakeBMC{User: user, Password: password, pc: pc, sessions: map[uint32]*fakeSession{}}
	f.wg.Go(f.serve)
	return f, nil
}

// Addr is the BMC's address, 127.0.0.1:port.
func (f *FakeBMC) Addr() string { return f.pc.LocalAddr().String() }

// Close stops the BMC and waits for its goroutine.
func (f *FakeBMC) Close() error {
	err := f.pc.Close()
	f.wg.Wait()
	return err
}

// PowerOn reports the chassis power.
func (f *FakeBMC) PowerOn() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.power }

// SetPowerOn sets the chassis power.
func (f *FakeBMC) SetPowerOn(on bool) { f.mu.Lock(); defer f.mu.Unlock(); f.power = on }

// Boot is the boot flags last set.
func (f *FakeBMC) Boot() ipmi.BootFlags { f.mu.Lock(); defer f.mu.Unlock(); return f.boot }

// Commands lists the state-changing commands received: "power up", "boot pxe" ...
func (f *FakeBMC) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

// Drop makes the BMC ignore the next n packets (to exercise retransmission).
func (f *FakeBMC) Drop(n int) { f.mu.Lock(); defer f.mu.Unlock(); f.drop = n }

// ForgetSessions drops every session, as a BMC does when sessions time out or it resets.
func (f *FakeBMC) ForgetSessions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.sessions)
}

// Sessions is the number of established sessions; Opened counts all ever established.
func (f *FakeBMC) Sessions() (active, opened int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.keys != nil {
			active++
		}
	}
	return active, f.opened
}

func (f *FakeBMC) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if out := f.handle(buf[:n]); out != nil {
			f.pc.WriteTo(out, from)
		}
	}
}

func (f *FakeBMC) handle(b []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drop > 0 {
		f.drop--
		return nil
	}
	if len(b) < 16 {
		return nil
	}
	sid := binary.LittleEndian.Uint32(b[6:])
	var keys *ipmi.Keys
	s := f.sessions[sid]
	if sid != 0 {
		if s == nil || s.keys == nil {
			return nil // unknown session: silence
		}
		keys = s.keys
	}
	p, err := ipmi.ParsePacket(b, keys)
	if err != nil {
		return nil
	}
	switch p.Type {
	case ipmi.PayloadOpenSessionRequest:
		return f.openSession(p.Payload)
	case ipmi.PayloadRAKP1:
		return f.rakp1(p.Payload)
	case ipmi.PayloadRAKP3:
		return f.rakp3(p.Payload)
	case ipmi.PayloadIPMI:
		if s == nil {
			return nil
		}
		return f.command(s, p.Payload)
	}
	return nil
}

func setupPacket(t ipmi.PayloadType, payload []byte) []byte {
	out, _ := ipmi.AppendPacket(nil, ipmi.Packet{Type: t, Payload: payload}, nil, nil)
	return out
}

func (f *FakeBMC) openSession(b []byte) []byte {
	r, err := ipmi.ParseOpenSessionRequest(b)
	resp := ipmi.OpenSessionResponse{Tag: r.Tag, ConsoleSessionID: r.ConsoleSessionID, Suite: r.Suite, MaxPrivilege: ipmi.PrivAdmin}
	if err != nil {
		resp.Status = ipmi.StatusNoCipherSuite
		return setupPacket(ipmi.PayloadOpenSessionResponse, resp.Append(nil))
	}
	var id uint32
	for id == 0 || f.sessions[id] != nil {
		var x [4]byte
		rand.Read(x[:])
		id = binary.LittleEndian.Uint32(x[:])
	}
	maxPriv := r.MaxPrivilege
	if maxPriv == 0 {
		maxPriv = ipmi.PrivAdmin
	}
	f.sessions[id] = &fakeSession{bmcID: id, consoleID: r.ConsoleSessionID, suite: r.Suite, maxPriv: maxPriv, seq: 1}
	resp.BMCSessionID, resp.MaxPrivilege = id, maxPriv
	return setupPacket(ipmi.PayloadOpenSessionResponse, resp.Append(nil))
}

func (f *FakeBMC) rakp1(b []byte) []byte {
	r, err := ipmi.ParseRAKP1(b)
	if err != nil {
		return nil
	}
	s := f.sessions[r.BMCSessionID]
	if s == nil {
		return nil
	}
	resp := ipmi.RAKP2{Tag: r.Tag, ConsoleSessionID: s.consoleID}
	if r.User != f.User {
		resp.Status = ipmi.StatusUnauthorizedName
		delete(f.sessions, s.bmcID)
		return setupPacket(ipmi.PayloadRAKP2, resp.Append(nil))
	}
	s.hs = ipmi.Handshake{Suite: s.suite, Password: []byte(f.Password), ConsoleSessionID: s.consoleID, BMCSessionID: s.bmcID,
		ConsoleRandom: r.ConsoleRandom, Role: r.Role, User: r.User}
	rand.Read(s.hs.BMCRandom[:])
	rand.Read(s.hs.BMCGUID[:])
	resp.BMCRandom, resp.BMCGUID, resp.AuthCode = s.hs.BMCRandom, s.hs.BMCGUID, s.hs.RAKP2AuthCode()
	return setupPacket(ipmi.PayloadRAKP2, resp.Append(nil))
}

func (f *FakeBMC) rakp3(b []byte) []byte {
	r, err := ipmi.ParseRAKP3(b)
	if err != nil {
		return nil
	}
	s := f.sessions[r.BMCSessionID]
	if s == nil || s.hs.User != f.User {
		return nil
	}
	resp := ipmi.RAKP4{Tag: r.Tag, ConsoleSessionID: s.consoleID}
	want := s.hs.RAKP3AuthCode()
	if string(want) != string(r.AuthCode) {
		resp.Status = ipmi.StatusInvalidICV
		delete(f.sessions, s.bmcID)
		return setupPacket(ipmi.PayloadRAKP4, resp.Append(nil))
	}
	if s.keys, err = s.hs.Keys(); err != nil {
		return nil
	}
	s.priv = ipmi.PrivUser
	f.opened++
	resp.ICV = s.hs.RAKP4ICV()
	return setupPacket(ipmi.PayloadRAKP4, resp.Append(nil))
}

func (f *FakeBMC) command(s *fakeSession, b []byte) []byte {
	req, err := ipmi.ParseRequest(b)
	if err != nil {
		return nil
	}
	code, data := f.exec(s, req)
	msg := ipmi.AppendResponse(nil, ipmi.Response{NetFn: req.NetFn + 1, Cmd: req.Cmd, Seq: req.Seq, Code: code, Data: data})
	out, err := ipmi.AppendPacket(nil, ipmi.Packet{Type: ipmi.PayloadIPMI, Encrypted: true, Authenticated: true,
		SessionID: s.consoleID, Seq: s.seq, Payload: msg}, s.keys, rand.Reader)
	s.seq++
	if err != nil {
		return nil
	}
	if req.NetFn == ipmi.NetFnApp && req.Cmd == ipmi.CmdCloseSession && code == ipmi.CodeOK {
		delete(f.sessions, s.bmcID)
	}
	return out
}

func (f *FakeBMC) exec(s *fakeSession, req ipmi.Request) (ipmi.CompletionCode, []byte) {
	need := func(p ipmi.Privilege) bool { return s.priv >= p }
	switch {
	case req.NetFn == ipmi.NetFnApp && req.Cmd == ipmi.CmdSetSessionPrivilege:
		if len(req.Data) < 1 {
			return 0xC7, nil
		}
		p := ipmi.Privilege(req.Data[0] & 0x0F)
		if p > s.maxPriv || p < ipmi.PrivUser {
			return 0x81, nil
		}
		s.priv = p
		return ipmi.CodeOK, []byte{byte(p)}
	case req.NetFn == ipmi.NetFnApp && req.Cmd == ipmi.CmdCloseSession:
		return ipmi.CodeOK, nil
	case req.NetFn == ipmi.NetFnChassis && req.Cmd == ipmi.CmdGetChassisStatus:
		var b0 byte
		if f.power {
			b0 = 1
		}
		return ipmi.CodeOK, []byte{b0, 0, 0}
	case req.NetFn == ipmi.NetFnChassis && req.Cmd == ipmi.CmdChassisControl:
		if !need(ipmi.PrivOperator) {
			return ipmi.CodeInsufficientPriv, nil
		}
		if len(req.Data) < 1 || !ipmi.ChassisControl(req.Data[0]).Valid() {
			return 0xCC, nil
		}
		c := ipmi.ChassisControl(req.Data[0])
		switch c {
		case ipmi.PowerUp, ipmi.PowerCycle, ipmi.HardReset:
			f.power = true
		case ipmi.PowerDown, ipmi.SoftShutdown:
			f.power = false
		}
		f.commands = append(f.commands, c.String())
		return ipmi.CodeOK, nil
	case req.NetFn == ipmi.NetFnChassis && req.Cmd == ipmi.CmdSetSystemBootOptions:
		if !need(ipmi.PrivOperator) {
			return ipmi.CodeInsufficientPriv, nil
		}
		if len(req.Data) < 1 {
			return 0xC7, nil
		}
		switch req.Data[0] & 0x7F {
		case ipmi.BootParamFlagValidClear:
			return ipmi.CodeOK, nil
		case ipmi.BootParamFlags:
			if len(req.Data) < 6 {
				return 0xC7, nil
			}
			fl, err := ipmi.ParseBootFlags(append([]byte{1, ipmi.BootParamFlags}, req.Data[1:]...))
			if err != nil {
				return 0xCC, nil
			}
			f.boot = fl
			f.commands = append(f.commands, fmt.Sprintf("boot %s valid=%t persistent=%t efi=%t", fl.Device, fl.Valid, fl.Persistent, fl.EFI))
			return ipmi.CodeOK, nil
		}
		return ipmi.CodeParamNotSupported, nil
	case req.NetFn == ipmi.NetFnChassis && req.Cmd == ipmi.CmdGetSystemBootOptions:
		if len(req.Data) < 1 || req.Data[0]&0x7F != ipmi.BootParamFlags {
			return ipmi.CodeParamNotSupported, nil
		}
		return ipmi.CodeOK, f.boot.Append([]byte{1, ipmi.BootParamFlags})
	}
	return ipmi.CodeInvalidCommand, nil
}
