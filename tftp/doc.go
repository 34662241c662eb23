// Package tftp serves the boot files a node fetches by name: a read-only TFTP server
// (RFC 1350 with the options of RFC 2347, 2348, 2349 and 7440 windowsize), the same files
// over HTTP, and per-node boot configs (pxelinux, xNBA/iPXE, GRUB2 in xCAT's formats,
// package bootconf) generated on request, so 10,000 nodes need no files on disk.
//
// Content comes from a Files: OpenDir confines a directory with os.Root (no "..", no
// absolute path, no symbolic link out), FS serves an fs.FS, BootConfigs renders configs
// from a Nodes lookup, and Overlay layers generated files over static ones:
//
//	root, err := tftp.OpenDir("/tftpboot")
//	if err != nil { ... }
//	files := tftp.Overlay(&tftp.BootConfigs{Nodes: nodes}, root)
//	g.Go(func() error { return (&tftp.Server{Files: files, Logger: log}).Serve(ctx) })
//	mux.Handle("/tftpboot/", http.StripPrefix("/tftpboot", &tftp.HTTPHandler{Files: files}))
//
// # TFTP engine, and where pin/tftp is used
//
// The TFTP transfers run on this package's own engine; github.com/pin/tftp/v3 provides
// the netascii conversion (netascii.ToReader) and is the reference client in the tests.
// pin/tftp's server does not fit the rest: its packet and option code is unexported, it
// has no windowsize, it cannot open transfer sockets in the request socket's network
// namespace, abort transfers on a context, bound concurrency or pick the error code; and
// measured on loopback (64 MiB, blksize 1468, curl) its lockstep sender took 2.1 s where
// tftpd-hpa took 1.3 s (see bench/tftp). The engine here:
//
//   - parses requests itself (ParseRequest, fuzzed) and refuses WRQs with an access
//     violation; names pass CleanName, then Files;
//   - answers each RRQ from a fresh connected UDP socket (a new TID) bound to the address
//     the request came to, opened in the network namespace of the request socket even
//     when that is not the process's (SIOCGSKNS and a locked thread);
//   - negotiates blksize (8..MaxBlockSize), tsize, timeout and windowsize (capped by
//     MaxWindowSize and 512 KiB per window); without windowsize it runs lockstep;
//   - sends a window as one sendmsg with UDP GSO (UDP_SEGMENT) when the socket allows,
//     restarts a window from the client's last acknowledged block on a gap (RFC 7440) or
//     a timeout, never on a duplicate ACK in lockstep (no Sorcerer's Apprentice), rolls
//     block numbers over past 65535;
//   - sends and receives a transfer's packets with raw system calls on the non-blocking
//     socket (waiting in Go's network poller as net.Conn does), which spares the runtime's
//     per-call bookkeeping: on an idle process it woke the runtime's monitor thread twice
//     per lockstep block;
//   - busy-waits up to SpinWait (50 µs) for an ACK before it sleeps, while the transfer's
//     recent round trips are that short and fewer than half of the CPUs spin: in lockstep
//     on loopback the sleep and wake-up were a third of a block's time;
//   - bounds running transfers (MaxTransfers; more requests are dropped and the clients
//     retry), gives up after Retries timeouts in a row or TransferLimit, and on Serve's
//     context end tells every client and waits for every goroutine.
//
// OnTransfer receives a Transfer record (client, file, bytes, duration, error) for every
// TFTP request and HTTP request, for logs and metrics.
package tftp
