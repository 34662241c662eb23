package ipmi

import (
	"errors"
	"fmt"
)

// NetFn is an IPMI network function code (the request's; a response carries NetFn+1).
type NetFn uint8

// Network functions used here.
const (
	NetFnChassis NetFn = 0x00
	NetFnApp     NetFn = 0x06
)

// Commands used here.
const (
	CmdGetChassisStatus     = 0x01 // NetFnChassis
	CmdChassisControl       = 0x02 // NetFnChassis
	CmdSetSystemBootOptions = 0x08 // NetFnChassis
	CmdGetSystemBootOptions = 0x09 // NetFnChassis

	CmdGetDeviceID          = 0x01 // NetFnApp
	CmdGetChannelAuthCaps   = 0x38 // NetFnApp
	CmdSetSessionPrivilege  = 0x3B // NetFnApp
	CmdCloseSession         = 0x3C // NetFnApp
	bmcSlaveAddr            = 0x20
	remoteConsoleSoftwareID = 0x81
)

// A Request is an IPMI request message as carried in a LAN payload.
type Request struct {
	NetFn NetFn
	Cmd   uint8
	Seq   uint8 // request sequence number, 6 bits
	Data  []byte
}

// A Response is an IPMI response message as carried in a LAN payload.
type Response struct {
	NetFn NetFn // the response's network function (the request's + 1)
	Cmd   uint8
	Seq   uint8
	Code  CompletionCode
	Data  []byte // after the completion code; aliases the parsed buffer
}

// ErrShort reports a message or packet shorter than its format requires.
var ErrShort = errors.New("ipmi: message too short")

// ErrChecksum reports an IPMI message whose header or body checksum is wrong.
var ErrChecksum = errors.New("ipmi: bad checksum")

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// AppendRequest appends the LAN encoding of r to dst: responder and requester addresses,
// network function, sequence, command, data and both checksums.
func AppendRequest(dst []byte, r Request) []byte {
	start := len(dst)
	dst = append(dst, bmcSlaveAddr, byte(r.NetFn)<<2)
	dst = append(dst, checksum(dst[start:]))
	body := len(dst)
	dst = append(dst, remoteConsoleSoftwareID, r.Seq<<2, r.Cmd)
	dst = append(dst, r.Data...)
	return append(dst, checksum(dst[body:]))
}

// ParseRequest parses the LAN encoding of an IPMI request (the BMC side of AppendRequest).
func ParseRequest(b []byte) (Request, error) {
	if len(b) < 7 {
		return Request{}, fmt.Errorf("ipmi: request of %d bytes: %w", len(b), ErrShort)
	}
	if checksum(b[:2]) != b[2] || checksum(b[3:len(b)-1]) != b[len(b)-1] {
		return Request{}, ErrChecksum
	}
	return Request{NetFn: NetFn(b[1] >> 2), Seq: b[4] >> 2, Cmd: b[5], Data: b[6 : len(b)-1]}, nil
}

// AppendResponse appends the LAN encoding of a response to dst (the BMC side).
func AppendResponse(dst []byte, r Response) []byte {
	start := len(dst)
	dst = append(dst, remoteConsoleSoftwareID, byte(r.NetFn)<<2)
	dst = append(dst, checksum(dst[start:]))
	body := len(dst)
	dst = append(dst, bmcSlaveAddr, r.Seq<<2, r.Cmd, byte(r.Code))
	dst = append(dst, r.Data...)
	return append(dst, checksum(dst[body:]))
}

// ParseResponse parses the LAN encoding of an IPMI response message. Data aliases b.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 8 {
		return Response{}, fmt.Errorf("ipmi: response of %d bytes: %w", len(b), ErrShort)
	}
	if checksum(b[:2]) != b[2] || checksum(b[3:len(b)-1]) != b[len(b)-1] {
		return Response{}, ErrChecksum
	}
	return Response{
		NetFn: NetFn(b[1] >> 2),
		Seq:   b[4] >> 2,
		Cmd:   b[5],
		Code:  CompletionCode(b[6]),
		Data:  b[7 : len(b)-1],
	}, nil
}

// CompletionCode is the first byte of every IPMI response. A non-zero code is an error.
type CompletionCode uint8

// Completion codes callers may branch on.
const (
	CodeOK                  CompletionCode = 0x00
	CodeParamNotSupported   CompletionCode = 0x80 // Set/Get System Boot Options
	CodeInvalidCommand      CompletionCode = 0xC1
	CodeInsufficientPriv    CompletionCode = 0xD4
	CodeNotSupportedInState CompletionCode = 0xD5
)

var codeText = map[CompletionCode]string{
	0x00: "command completed normally",
	0xC0: "node busy",
	0xC1: "invalid or unsupported command",
	0xC2: "command invalid for given LUN",
	0xC3: "timeout while processing command",
	0xC4: "out of space",
	0xC5: "reservation canceled or invalid reservation ID",
	0xC6: "request data truncated",
	0xC7: "request data length invalid",
	0xC8: "request data field length limit exceeded",
	0xC9: "parameter out of range",
	0xCA: "cannot return number of requested data bytes",
	0xCB: "requested sensor, data, or record not present",
	0xCC: "invalid data field in request",
	0xCD: "command illegal for specified sensor or record type",
	0xCE: "command response could not be provided",
	0xCF: "cannot execute duplicated request",
	0xD0: "SDR repository in update mode",
	0xD1: "device in firmware update mode",
	0xD2: "BMC initialization in progress",
	0xD3: "destination unavailable",
	0xD4: "insufficient privilege level",
	0xD5: "command not supported in present state",
	0xD6: "command sub-function disabled or unavailable",
	0xFF: "unspecified error",
}

// Error makes a non-zero completion code usable as an error.
func (c CompletionCode) Error() string {
	if t, ok := codeText[c]; ok {
		return fmt.Sprintf("completion code 0x%02X (%s)", uint8(c), t)
	}
	return fmt.Sprintf("completion code 0x%02X", uint8(c))
}
