package ipmi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The commands of xCAT's bmcsetup: LAN configuration parameters (IPMI v2.0 section 23),
// users and channel access (section 22), as request builders and response parsers.

// NetFnTransport is the network function of the LAN configuration commands.
const NetFnTransport NetFn = 0x0C

// Commands of bmcsetup.
const (
	CmdSetLANConfig     = 0x01 // NetFnTransport
	CmdGetLANConfig     = 0x02 // NetFnTransport
	CmdSetChannelAccess = 0x40 // NetFnApp
	CmdGetChannelInfo   = 0x42 // NetFnApp
	CmdSetUserAccess    = 0x43 // NetFnApp
	CmdGetUserAccess    = 0x44 // NetFnApp
	CmdSetUserName      = 0x45 // NetFnApp
	CmdGetUserName      = 0x46 // NetFnApp
	CmdSetUserPassword  = 0x47 // NetFnApp
)

// LANParam is a LAN configuration parameter selector.
type LANParam uint8

// LAN configuration parameters.
const (
	LANSetInProgress  LANParam = 0  // 0 set complete, 1 set in progress
	LANIPAddr         LANParam = 3  // 4 bytes
	LANIPSource       LANParam = 4  // 1 static, 2 DHCP
	LANSubnetMask     LANParam = 6  // 4 bytes
	LANDefaultGateway LANParam = 12 // 4 bytes
	LANVLANID         LANParam = 20 // 2 bytes: ID (12 bits), bit 15 enables
)

// IP address sources (LANIPSource).
const (
	IPSourceStatic = 1
	IPSourceDHCP   = 2
)

// MediumLAN is the channel medium type of an 802.3 LAN channel (Get Channel Info).
const MediumLAN = 0x04

// SetLANConfig is the Set LAN Configuration Parameters request of param on channel ch.
func SetLANConfig(ch uint8, param LANParam, data ...byte) Request {
	return Request{NetFn: NetFnTransport, Cmd: CmdSetLANConfig, Data: append([]byte{ch & 0x0F, byte(param)}, data...)}
}

// GetLANConfig is the Get LAN Configuration Parameters request of param on channel ch.
func GetLANConfig(ch uint8, param LANParam) Request {
	return Request{NetFn: NetFnTransport, Cmd: CmdGetLANConfig, Data: []byte{ch & 0x0F, byte(param), 0, 0}}
}

// ParseLANConfig returns the parameter data of a Get LAN Configuration Parameters
// response (after the parameter revision byte). It aliases data.
func ParseLANConfig(data []byte) ([]byte, error) {
	if len(data) < 2 {
		return nil, fmt.Errorf("ipmi: Get LAN Configuration Parameters response of %d bytes: %w", len(data), ErrShort)
	}
	return data[1:], nil
}

// IPv4Param is the 4-byte form of an IPv4 address in a LAN parameter, or an error
// naming a that is not IPv4.
func IPv4Param(a netip.Addr) ([]byte, error) {
	if !a.Is4() {
		return nil, fmt.Errorf("ipmi: %s is not an IPv4 address", a)
	}
	b := a.As4()
	return b[:], nil
}

// MaskParam is the subnet mask parameter of a prefix length.
func MaskParam(bits int) ([]byte, error) {
	if bits < 0 || bits > 32 {
		return nil, fmt.Errorf("ipmi: prefix length %d: want 0 to 32", bits)
	}
	return binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-bits)), nil
}

// VLANParam is the 802.1q VLAN ID parameter: id 1 to 4094 enables tagging, 0 disables it.
func VLANParam(id int) ([]byte, error) {
	if id < 0 || id > 4094 {
		return nil, fmt.Errorf("ipmi: VLAN %d: want 0 (none) or 1 to 4094", id)
	}
	v := uint16(id)
	if id != 0 {
		v |= 0x8000
	}
	return binary.LittleEndian.AppendUint16(nil, v), nil
}

// ChannelInfo is a Get Channel Info response.
type ChannelInfo struct {
	Channel  uint8
	Medium   uint8 // MediumLAN for an 802.3 LAN
	Protocol uint8
}

// GetChannelInfo is the Get Channel Info request of channel ch.
func GetChannelInfo(ch uint8) Request {
	return Request{NetFn: NetFnApp, Cmd: CmdGetChannelInfo, Data: []byte{ch & 0x0F}}
}

// ParseChannelInfo parses a Get Channel Info response.
func ParseChannelInfo(data []byte) (ChannelInfo, error) {
	if len(data) < 3 {
		return ChannelInfo{}, fmt.Errorf("ipmi: Get Channel Info response of %d bytes: %w", len(data), ErrShort)
	}
	return ChannelInfo{Channel: data[0] & 0x0F, Medium: data[1] & 0x7F, Protocol: data[2] & 0x1F}, nil
}

// SetChannelAccess is the Set Channel Access request that makes LAN channel ch always
// available with privilege limit priv, in its non-volatile (volatile false) or volatile
// (active) settings.
func SetChannelAccess(ch uint8, volatile bool, priv Privilege) Request {
	which := byte(0x40) // set non-volatile
	if volatile {
		which = 0x80
	}
	// Access mode 2: always available; PEF alerting, per-message and user-level
	// authentication left enabled.
	return Request{NetFn: NetFnApp, Cmd: CmdSetChannelAccess, Data: []byte{ch & 0x0F, which | 0x02, which | byte(priv&0x0F)}}
}

// UserAccess is a Get User Access response.
type UserAccess struct {
	MaxUsers, Enabled, Fixed uint8
	// Callin, LinkAuth and IPMIMsg are the user's access on the channel; Priv its
	// privilege limit there (0x0F: no access).
	Callin, LinkAuth, IPMIMsg bool
	Priv                      Privilege
}

// GetUserAccess is the Get User Access request of user id on channel ch.
func GetUserAccess(ch, id uint8) Request {
	return Request{NetFn: NetFnApp, Cmd: CmdGetUserAccess, Data: []byte{ch & 0x0F, id & 0x3F}}
}

// ParseUserAccess parses a Get User Access response.
func ParseUserAccess(data []byte) (UserAccess, error) {
	if len(data) < 4 {
		return UserAccess{}, fmt.Errorf("ipmi: Get User Access response of %d bytes: %w", len(data), ErrShort)
	}
	return UserAccess{MaxUsers: data[0] & 0x3F, Enabled: data[1] & 0x3F, Fixed: data[2] & 0x3F,
		Callin: data[3]&0x40 == 0, LinkAuth: data[3]&0x20 != 0, IPMIMsg: data[3]&0x10 != 0, Priv: Privilege(data[3] & 0x0F)}, nil
}

// SetUserAccess is the Set User Access request giving user id on channel ch IPMI
// messaging, link authentication and privilege limit priv.
func SetUserAccess(ch, id uint8, priv Privilege) Request {
	return Request{NetFn: NetFnApp, Cmd: CmdSetUserAccess, Data: []byte{0x80 | 0x20 | 0x10 | ch&0x0F, id & 0x3F, byte(priv & 0x0F)}}
}

// GetUserName is the Get User Name request of user id.
func GetUserName(id uint8) Request {
	return Request{NetFn: NetFnApp, Cmd: CmdGetUserName, Data: []byte{id & 0x3F}}
}

// ParseUserName parses a Get User Name response: the name up to its first NUL.
func ParseUserName(data []byte) (string, error) {
	if len(data) < 16 {
		return "", fmt.Errorf("ipmi: Get User Name response of %d bytes: %w", len(data), ErrShort)
	}
	name, _, _ := bytes.Cut(data[:16], []byte{0})
	return string(name), nil
}

// SetUserName is the Set User Name request of user id, or an error for a name IPMI
// cannot hold (empty, longer than 16 bytes, or with a NUL).
func SetUserName(id uint8, name string) (Request, error) {
	if name == "" || len(name) > 16 || bytes.IndexByte([]byte(name), 0) >= 0 {
		return Request{}, fmt.Errorf("ipmi: user name of %d bytes: want 1 to 16 bytes without NUL", len(name))
	}
	data := make([]byte, 17)
	data[0] = id & 0x3F
	copy(data[1:], name)
	return Request{NetFn: NetFnApp, Cmd: CmdSetUserName, Data: data}, nil
}

// PasswordOp is the operation of a Set User Password request.
type PasswordOp uint8

// Set User Password operations.
const (
	UserDisable  PasswordOp = 0
	UserEnable   PasswordOp = 1
	UserPassword PasswordOp = 2
	UserTest     PasswordOp = 3
)

// SetUserPassword is the Set User Password request of user id: op UserPassword sets
// password (stored as 16 bytes, or 20 when it is longer than 16), UserTest checks it,
// UserEnable and UserDisable ignore it. The error never holds the password.
func SetUserPassword(id uint8, op PasswordOp, password string) (Request, error) {
	data := []byte{id & 0x3F, byte(op & 0x03)}
	if op == UserPassword || op == UserTest {
		if len(password) > 20 || bytes.IndexByte([]byte(password), 0) >= 0 {
			return Request{}, fmt.Errorf("ipmi: password of %d bytes: want at most 20 bytes without NUL", len(password))
		}
		size := 16
		if len(password) > 16 {
			size, data[0] = 20, data[0]|0x80
		}
		pw := make([]byte, size)
		copy(pw, password)
		data = append(data, pw...)
	}
	return Request{NetFn: NetFnApp, Cmd: CmdSetUserPassword, Data: data}, nil
}
