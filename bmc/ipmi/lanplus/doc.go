// Package lanplus is an IPMI v2.0 over LAN ("lanplus", RMCP+) client in pure Go: one
// Session is one authenticated, encrypted session with one BMC over one UDP socket,
// good for any number of commands until it is closed. It does what `ipmitool -I lanplus
// -C 3` does for chassis power and boot-device control, without a process per command
// and without the password ever leaving memory.
//
// Retransmission follows the usual IPMI LAN practice: a request not answered within
// RetryInterval is sent again (with a new session sequence number) and the wait
// doubles, until the context ends. A context deadline is the per-command timeout.
//
//	s, err := lanplus.Open(ctx, lanplus.Config{Addr: "10.0.0.5:623", User: "admin", Password: pw})
//	if err != nil {
//		return err
//	}
//	defer s.Close(context.Background())
//	st, err := s.ChassisStatus(ctx)
//	fmt.Println(st.PowerOn)
package lanplus
