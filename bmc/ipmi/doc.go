// Package ipmi is a codec for IPMI v2.0 over LAN (RMCP+, "lanplus"): the RMCP+ session
// packet with its integrity trailer and AES-CBC-128 confidentiality, the Open Session and
// RAKP 1-4 handshake messages with their key derivation, IPMI request and response
// messages, the chassis commands used for power and boot-device control, and the LAN
// configuration, user and channel access commands of xCAT's bmcsetup (lan.go).
//
// It holds no sockets: package lanplus is the client that speaks it over UDP, package
// inband the one that speaks it to the local BMC through /dev/ipmi0, and
// package bmctest has a small BMC built on it for tests. Cipher suites 3
// (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) and 17 (RAKP-HMAC-SHA256,
// HMAC-SHA256-128, AES-CBC-128) are supported.
//
// Encoding a request and reading a response:
//
//	b := ipmi.AppendRequest(nil, ipmi.Request{NetFn: ipmi.NetFnChassis, Cmd: ipmi.CmdGetChassisStatus, Seq: 1})
//	// ... wrap b in a Packet, send it, read the answer ...
//	resp, err := ipmi.ParseResponse(answer)
//	st, err := ipmi.ParseChassisStatus(resp.Data)
//	fmt.Println(st.PowerOn)
package ipmi
