// Command bmcbench measures package bmc against OpenIPMI's ipmi_sim simulators, side by
// side in the same run with bmclib's ipmitool provider and with a shell loop that runs
// ipmitool once per node (what xCAT-era scripts and Warewulf's power template do).
// bench/bmc/run.sh drives it.
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

type row struct {
	op, tool string
	wall     time.Duration
	failed   int
	self     float64 // this process's CPU seconds
	machine  float64 // all CPUs' busy seconds (ipmi_sim, ipmitool, shell included)
}

func main() {
	n := flag.Int("n", 100, "number of ipmi_sim simulators, one target each")
	ops := flag.String("ops", "stat,on", "rpower actions to measure")
	peers := flag.Bool("peers", true, "also measure bmclib's ipmitool provider and the ipmitool shell loop")
	conc := flag.Int("concurrency", 0, "bmc.Client.Concurrency (0: the default)")
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
	fmt.Printf("# %d ipmi_sim started in %.2fs, memory %s\n", *n, time.Since(t0).Seconds(), memory(sims))

	targets := make([]bmc.Target, len(sims.List))
	for i, s := range sims.List {
		targets[i] = bmc.Target{Node: fmt.Sprintf("n%d", i+1), Mgt: "ipmi", Addr: s.Addr, User: s.User, Password: bmc.Secret(s.Password)}
	}
	reset := func() {
		for _, s := range sims.List {
			s.SetPower(false)
		}
	}
	var rows []row
	measure := func(op, tool string, f func() int) {
		reset()
		self0, busy0 := selfCPU(), machineBusy()
		start := time.Now()
		failed := f()
		rows = append(rows, row{op, tool, time.Since(start), failed, selfCPU() - self0, machineBusy() - busy0})
		r := rows[len(rows)-1]
		fmt.Printf("%-5s %-44s %8.3fs %7.0f nodes/s  failed %-4d cpu: self %.2fs, machine %.2fs\n",
			r.op, r.tool, r.wall.Seconds(), float64(*n)/r.wall.Seconds(), r.failed, r.self, r.machine)
	}
	count := func(rs []bmc.Result) int {
		bad := 0
		for _, r := range rs {
			if r.Err != nil {
				if bad < 3 {
					fmt.Fprintln(os.Stderr, "  ", r.Node, r.Err)
				}
				bad++
			}
		}
		return bad
	}
	list := filepath.Join(dir, "targets")
	var b strings.Builder
	for i, s := range sims.List {
		host, port, _ := strings.Cut(s.Addr, ":")
		fmt.Fprintf(&b, "n%d %s %s\n", i+1, host, port)
	}
	os.WriteFile(list, []byte(b.String()), 0o644)

	for _, name := range strings.Split(*ops, ",") {
		a, err := bmc.ParseAction(name)
		if err != nil {
			log.Fatal(err)
		}
		// A CLI run: log in, act, log out.
		c := &bmc.Client{Concurrency: *conc}
		measure(name, "provkit lanplus, CLI run (log in, act, log out)", func() int {
			bad := count(c.Power(ctx, targets, a))
			c.Close(ctx)
			return bad
		})
		// A long-running caller: the sessions of a first run are kept.
		c.Power(ctx, targets, bmc.Stat)
		measure(name, "provkit lanplus, sessions kept from before", func() int { return count(c.Power(ctx, targets, a)) })
		c.Close(ctx)
		if !*peers {
			continue
		}
		// Five ipmitool runs per node for "on" (bmclib checks the state twice): give it time.
		ct := &bmc.Client{Concurrency: *conc, Ipmitool: true, Timeout: 5 * time.Minute}
		measure(name, "provkit over bmclib's ipmitool provider", func() int { return count(ct.Power(ctx, targets, a)) })
		ct.Close(ctx)
		arg := map[string]string{"stat": "status", "on": "on", "off": "off", "reset": "reset"}[name]
		if arg == "" {
			continue
		}
		measure(name, "shell loop, one ipmitool per node", func() int {
			loop := `while read node host port; do echo "$node: $(ipmitool -I lanplus -C 3 -H $host -p $port -U admin -E chassis power ` + arg + ` 2>&1)"; done < ` + list
			cmd := exec.Command("bash", "-c", loop)
			cmd.Env = append(os.Environ(), "IPMI_PASSWORD=pass")
			out, err := cmd.Output()
			if err != nil {
				log.Fatal(err)
			}
			return *n - strings.Count(string(out), "Chassis Power")
		})
	}
	fmt.Println()
	for _, r := range rows {
		if strings.HasPrefix(r.tool, "shell") {
			for _, p := range rows {
				if p.op == r.op && strings.HasPrefix(p.tool, "provkit lanplus") {
					fmt.Printf("ratio %-5s shell loop / %-44s %6.1fx\n", r.op, p.tool, r.wall.Seconds()/p.wall.Seconds())
				}
			}
		}
	}
}

func selfCPU() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// machineBusy is the busy CPU seconds of the whole machine (/proc/stat): other users'
// work counts too on a shared machine.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy / 100
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
	return fmt.Sprintf("RSS %d MiB, PSS %d MiB (shared libraries counted once in PSS)", rss/1024, pss/1024)
}
