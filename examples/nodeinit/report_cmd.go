package main

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// nodeConf is where a sysclone deploy leaves the node's name and the status URL, for
// "nodeinit report" on the installed system (see doc.go).
const nodeConf = "/etc/provkit/node.conf"

// reportMain is "nodeinit report <state> [conf]": post a state for this node.
func reportMain(args []string) int {
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintf(os.Stderr, "usage: nodeinit report <state> [%s]\n", nodeConf)
		return 2
	}
	conf := nodeConf
	if len(args) == 2 {
		conf = args[1]
	}
	node, status, err := readNodeConf(conf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodeinit report: %v\n", err)
		return 1
	}
	con := &console{w: os.Stdout, start: time.Now()}
	rep := &reporter{url: status, node: node, con: con, attempts: 10, backoff: 2 * time.Second, client: newHTTPClient()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := rep.report(ctx, args[0]); err != nil {
		return 1
	}
	con.printf("reported %q for %s", args[0], node)
	return 0
}

// readNodeConf reads NODE= and STATUS= lines.
func readNodeConf(p string) (node, status string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "NODE":
			node = v
		case "STATUS":
			status = v
		}
	}
	if node == "" || status == "" {
		return "", "", fmt.Errorf("%s: want NODE= and STATUS= lines", p)
	}
	if u, err := url.Parse(status); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", "", fmt.Errorf("%s: STATUS=%q is not an http URL", p, status)
	}
	return node, status, sc.Err()
}
