package cluster

import (
	"net"
	"os"
	"strings"
)

// siteDefaults are the site keys xCAT's installer (xcatconfig) writes into a fresh
// database and that users and scripts rely on.
var siteDefaults = [][2]string{
	{"blademaxp", "64"},
	{"fsptimeout", "0"},
	{"installdir", "/install"},
	{"ipmimaxp", "64"},
	{"ipmiretries", "3"},
	{"ipmitimeout", "2"},
	{"consoleondemand", "no"},
	{"maxssh", "8"},
	{"ppcmaxp", "64"},
	{"ppcretry", "3"},
	{"ppctimeout", "0"},
	{"powerinterval", "0"},
	{"syspowerinterval", "0"},
	{"sharedtftp", "1"},
	{"SNsyncfiledir", "/var/xcat/syncfiles"},
	{"nodesyncfiledir", "/var/xcat/node/syncfiles"},
	{"tftpdir", "/tftpboot"},
	{"xcatdport", "3001"},
	{"xcatiport", "3002"},
	{"xcatconfdir", "/etc/xcat"},
	{"useNmapfromMN", "no"},
	{"enableASMI", "no"},
	{"databaseloc", "/var/lib"},
	{"sshbetweennodes", "ALLGROUPS"},
	{"dnshandler", "ddns"},
	{"vsftp", "n"},
	{"cleanupxcatpost", "no"},
	{"dhcplease", "43200"},
	{"auditnosyslog", "0"},
	{"xcatsslversion", "TLSv1_2"},
	{"auditskipcmds", "ALL"},
	{"httpport", "80"},
}

// policyDefaults are the policy rows of a fresh xCAT install (priority, name, commands,
// rule); row 1.2 names the management node and is added with the host name.
var policyDefaults = [][4]string{
	{"1", "root", "", "allow"},
	{"2", "", "getbmcconfig", "allow"},
	{"2.1", "", "remoteimmsetup", "allow"},
	{"2.3", "", "lsxcatd", "allow"},
	{"3", "", "nextdestiny", "allow"},
	{"4", "", "getdestiny", "allow"},
	{"4.4", "", "getpostscript", "allow"},
	{"4.5", "", "getcredentials", "allow"},
	{"4.6", "", "syncfiles", "allow"},
	{"4.7", "", "litefile", "allow"},
	{"4.8", "", "litetree", "allow"},
	{"4.9", "", "getadapter", "allow"},
}

// hostFacts reads what xcatconfig derives from the management node itself: its host
// name, DNS domain, first non-loopback IPv4 address and time zone. Any of them may be "".
func hostFacts() (hostname, domain, master, timezone string) {
	hostname, _ = os.Hostname()
	if i := strings.IndexByte(hostname, '.'); i > 0 {
		domain = hostname[i+1:]
		hostname = hostname[:i]
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				master = ipn.IP.String()
				break
			}
		}
	}
	if b, err := os.ReadFile("/etc/timezone"); err == nil {
		timezone = strings.TrimSpace(string(b))
	}
	return
}

// fillDefaults writes xCAT's defaults into a store that provkit opens for the first time,
// leaving alone any row that already exists (a database made by an older tool keeps its
// values).
func fillDefaults(tx *sqlTx) error {
	hostname, domain, master, tz := hostFacts()
	if domain == "" {
		domain = "cluster"
	}
	site := make([]Row, 0, len(siteDefaults)+3)
	for _, kv := range siteDefaults {
		site = append(site, Row{"key": kv[0], "value": kv[1]})
	}
	site = append(site, Row{"key": "domain", "value": domain})
	if master != "" {
		site = append(site, Row{"key": "master", "value": master}, Row{"key": "nameservers", "value": master})
	}
	if tz != "" {
		site = append(site, Row{"key": "timezone", "value": tz})
	}
	if err := tx.putIfAbsent("site", site); err != nil {
		return err
	}
	if err := tx.putIfAbsent("postscripts", []Row{{"node": "xcatdefaults", "postscripts": "syslog,remoteshell,syncfiles", "postbootscripts": "otherpkgs"}}); err != nil {
		return err
	}
	var pol []Row
	for i, p := range policyDefaults {
		pol = append(pol, Row{"priority": p[0], "name": p[1], "commands": p[2], "rule": p[3]})
		if i == 0 && hostname != "" {
			pol = append(pol, Row{"priority": "1.2", "name": hostname, "rule": "trusted"})
		}
	}
	return tx.putIfAbsent("policy", pol)
}
