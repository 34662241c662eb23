// Command bmcbench measures package bmc against OpenIPMI's ipmi_sim simulators, and a
// shell loop that runs ipmitool once per node (what xCAT-era scripts and Warewulf's
// template do) against the same simulators in the same run. bench/bmc/run.sh drives it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/bmc/bmctest"
)

func main() {
	n := flag.Int("n", 100, "number of simulators (one target each)")
	ops := flag.String("ops", "stat,on,stat", "provkit operations to time, in order")
	rounds := flag.Int("rounds", 1, "times each operation runs (same client: later rounds reuse sessions)")
	conc := flag.Int("concurrency", 0, "bmc.Client.Concurrency (0: default)")
	ipmitool := flag.Bool("ipmitool", false, "use bmclib's ipmitool provider instead of the native client")
	shell := flag.String("shell", "stat,on", "operations also timed as a shell loop calling ipmitool per node (empty: none)")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "bmcbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	t0 := time.Now()
	sims, err := bmctest.Start(ctx, dir, *n, bmctest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer sims.Stop()
	fmt.Printf("started %d ipmi_sim in %.2fs; their memory: %s\n", *n, time.Since(t0).Seconds(), memory(sims))

	targets := make([]bmc.Target, len(sims.List))
	for i, s := range sims.List {
		targets[i] = bmc.Target{Node: fmt.Sprintf("n%d", i+1), Mgt: "ipmi", Addr: s.Addr, User: s.User, Password: bmc.Secret(s.Password)}
	}
	provider := "lanplus"
	if *ipmitool {
		provider = "bmclib ipmitool"
	}
	figures := map[string]float64{}
	for _, name := range strings.Split(*ops, ",") {
		a, err := bmc.ParseAction(name)
		if err != nil {
			log.Fatal(err)
		}
		c := &bmc.Client{Concurrency: *conc, Ipmitool: *ipmitool}
		for r := 1; r <= *rounds; r++ {
			cpu0, simCPU0 := selfCPU(), simsCPU(sims)
			start := time.Now()
			rs := c.Power(ctx, targets, a)
			el := time.Since(start)
			failed := 0
			for _, x := range rs {
				if x.Err != nil {
					failed++
					if failed <= 3 {
						fmt.Println("  ", x.Node, x.Err)
					}
				}
			}
			fmt.Printf("provkit (%s) rpower %d nodes %-5s round %d: %7.3fs  %6.0f nodes/s  failed %d  cpu: provkit %.2fs, ipmi_sim %.2fs\n",
				provider, len(targets), a, r, el.Seconds(), float64(len(targets))/el.Seconds(), failed,
				selfCPU()-cpu0, simsCPU(sims)-simCPU0)
			if r == 1 {
				figures[string(a)] = el.Seconds()
			}
		}
		cl := time.Now()
		if err := c.Close(ctx); err != nil {
			fmt.Println("close:", err)
		}
		fmt.Printf("   close (log out %d sessions): %.3fs\n", len(targets), time.Since(cl).Seconds())
		if a == bmc.On {
			for _, s := range sims.List {
				s.SetPower(false)
			}
		}
	}
	if *shell == "" {
		return
	}
	list := filepath.Join(dir, "targets")
	var b strings.Builder
	for i, s := range sims.List {
		host, port, _ := strings.Cut(s.Addr, ":")
		fmt.Fprintf(&b, "n%d %s %s\n", i+1, host, port)
	}
	os.WriteFile(list, []byte(b.String()), 0o644)
	for _, name := range strings.Split(*shell, ",") {
		arg := map[string]string{"stat": "status", "on": "on", "off": "off"}[name]
		// The loop xCAT-era scripts and Warewulf's power template run: one ipmitool per node.
		loop := `while read node host port; do echo "$node: $(ipmitool -I lanplus -C 3 -H $host -p $port -U admin -E chassis power ` + arg + `)"; done < ` + list
		cmd := exec.Command("bash", "-c", loop)
		cmd.Env = append(os.Environ(), "IPMI_PASSWORD=pass")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		el := time.Since(start)
		lines := strings.Count(string(out), "\n")
		bad := strings.Count(string(out), "Error") + strings.Count(string(out), "rror:")
		fmt.Printf("shell loop ipmitool per node, %d nodes %-5s: %7.3fs  %6.0f nodes/s  lines %d errors %d %v\n",
			len(targets), name, el.Seconds(), float64(len(targets))/el.Seconds(), lines, bad, err)
		if p, ok := figures[name]; ok {
			fmt.Printf("   ratio shell/provkit for %s: %.1fx\n", name, el.Seconds()/p)
		}
		if name == "on" {
			for _, s := range sims.List {
				s.SetPower(false)
			}
		}
	}
}

// selfCPU is this process's user+system CPU seconds.
func selfCPU() float64 { return procCPU(os.Getpid()) }

func simsCPU(s *bmctest.Sims) float64 {
	var t float64
	for _, sim := range s.List {
		t += procCPU(sim.Pid())
	}
	return t
}

// procCPU reads utime+stime (and waited-for children) from /proc/PID/stat.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var t float64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseFloat(f[i], 64)
		t += v
	}
	return t / 100
}

func memory(s *bmctest.Sims) string {
	var rss, pss int
	for _, sim := range s.List {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", sim.Pid()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.Atoi(f[1])
				switch f[0] {
				case "Rss:":
					rss += v
				case "Pss:":
					pss += v
				}
			}
		}
	}
	return fmt.Sprintf("RSS %d MiB, PSS %d MiB", rss/1024, pss/1024)
}
