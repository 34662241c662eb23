package cluster

import (
	"slices"
	"strings"
)

// A Table describes one of xCAT's tables: its name, its columns in xCAT's order (tabdump
// prints them in this order; the last two are always comments and disable) and its key
// columns. Tables are data: the store creates and migrates SQL tables from these.
type Table struct {
	Name    string
	Columns []string
	Keys    []string
	// NotNull lists columns besides the keys that a row must have (xCAT's "required").
	NotNull []string
	Descr   string
}

// NodeKeyed reports whether rows of t are keyed by node name, so that they may hold group
// rows that nodes inherit from (every such table except nodelist).
func (t *Table) NodeKeyed() bool {
	return t.Name != "nodelist" && len(t.Keys) >= 1 && t.Keys[0] == "node"
}

// HasColumn reports whether t has column c.
func (t *Table) HasColumn(c string) bool { return slices.Contains(t.Columns, c) }

// IsKey reports whether c is one of t's key columns.
func (t *Table) IsKey(c string) bool { return slices.Contains(t.Keys, c) }

// cols builds a column list from xCAT's tabdump header, minus the "#".
func cols(header string) []string {
	return strings.Split(strings.TrimPrefix(header, "#"), ",")
}

// schema is xCAT's table model (perl-xCAT/xCAT/Schema.pm @ 7733d16f8de0, see
// shared/xcat/schema.md) for the tables provkit uses, plus the discovery tables.
// It is never modified after package initialisation.
var schema = []Table{
	{Name: "site", Columns: cols("#key,value,comments,disable"), Keys: []string{"key"},
		Descr: "Global settings for the whole cluster."},
	{Name: "networks", Columns: cols("#netname,net,mask,mgtifname,gateway,dhcpserver,tftpserver,nameservers,ntpservers,logservers,dynamicrange,staticrange,staticrangeincrement,nodehostname,ddnsdomain,vlanid,domain,mtu,comments,disable"),
		Keys: []string{"net", "mask"}, Descr: "Describes the networks in the cluster and info necessary to set up nodes on that network."},
	{Name: "nodelist", Columns: cols("#node,groups,status,statustime,appstatus,appstatustime,primarysn,hidden,updatestatus,updatestatustime,zonename,comments,disable"),
		Keys: []string{"node"}, Descr: "The list of all the nodes in the cluster, including each node's current status and what groups it is in."},
	{Name: "nodegroup", Columns: cols("#groupname,grouptype,members,membergroups,wherevals,comments,disable"),
		Keys: []string{"groupname"}, Descr: "Contains group definitions, whose membership is dynamic depending on characteristics of the node."},
	{Name: "hosts", Columns: cols("#node,ip,hostnames,otherinterfaces,comments,disable"),
		Keys: []string{"node"}, Descr: "IP addresses and hostnames of nodes."},
	{Name: "mac", Columns: cols("#node,interface,mac,comments,disable"),
		Keys: []string{"node"}, Descr: "The MAC address of the node's install adapter."},
	{Name: "nodetype", Columns: cols("#node,os,arch,profile,provmethod,supportedarchs,nodetype,comments,disable"),
		Keys: []string{"node"}, Descr: "A few hardware and software characteristics of the nodes."},
	{Name: "noderes", Columns: cols("#node,servicenode,netboot,tftpserver,tftpdir,nfsserver,monserver,nfsdir,installnic,primarynic,discoverynics,cmdinterface,xcatmaster,current_osimage,next_osimage,nimserver,routenames,nameservers,proxydhcp,syslog,comments,disable"),
		Keys: []string{"node"}, Descr: "Resources and settings to use when installing nodes."},
	{Name: "nodehm", Columns: cols("#node,power,mgt,cons,termserver,termport,conserver,serialport,serialspeed,serialflow,getmac,cmdmapping,consoleondemand,consoleenabled,comments,disable"),
		Keys: []string{"node"}, Descr: "Settings that control how each node's hardware is managed."},
	{Name: "ipmi", Columns: cols("#node,bmc,bmcport,taggedvlan,bmcid,username,password,comments,disable"),
		Keys: []string{"node"}, Descr: "Settings for nodes that are controlled by an on-board BMC via IPMI."},
	{Name: "openbmc", Columns: cols("#node,bmc,consport,taggedvlan,username,password,comments,disable"),
		Keys: []string{"node"}, Descr: "Setting for nodes that are controlled by an on-board OpenBMC."},
	{Name: "passwd", Columns: cols("#key,username,password,cryptmethod,authdomain,comments,disable"),
		Keys: []string{"key", "username"}, Descr: "Contains default userids and passwords for xCAT to access cluster components."},
	{Name: "osimage", Columns: cols("#imagename,groups,profile,imagetype,description,provmethod,rootfstype,nfsrootopts,osdistroname,osupdatename,cfmdir,osname,osvers,osarch,synclists,postscripts,postbootscripts,serverrole,isdeletable,kitcomponents,environvar,comments,disable"),
		Keys: []string{"imagename"}, Descr: "Basic information about an operating system image that can be used to deploy cluster nodes."},
	{Name: "linuximage", Columns: cols("#imagename,template,boottarget,addkcmdline,pkglist,pkgdir,otherpkglist,otherpkgdir,exlist,postinstall,rootimgdir,kerneldir,nodebootif,otherifce,netdrivers,kernelver,krpmver,permission,dump,crashkernelsize,partitionfile,driverupdatesrc,comments,disable"),
		Keys: []string{"imagename"}, Descr: "Information about a Linux operating system image that can be used to deploy cluster nodes."},
	{Name: "chain", Columns: cols("#node,currstate,currchain,chain,ondiscover,comments,disable"),
		Keys: []string{"node"}, Descr: "Controls what operations are done (and it what order) when a node is discovered and deployed."},
	{Name: "policy", Columns: cols("#priority,name,host,commands,noderange,parameters,time,rule,comments,disable"),
		Keys: []string{"priority"}, Descr: "The policy table in which users can define the policy for the xCAT commands."},
	{Name: "nodepos", Columns: cols("#node,rack,u,chassis,slot,room,height,comments,disable"),
		Keys: []string{"node"}, Descr: "Contains info about the physical location of each node."},
	{Name: "vpd", Columns: cols("#node,serial,mtm,side,asset,uuid,comments,disable"),
		Keys: []string{"node"}, Descr: "The Machine type, Model, and Serial numbers of each node."},
	{Name: "servicenode", Columns: cols("#node,nameserver,dhcpserver,tftpserver,nfsserver,conserver,monserver,ldapserver,ntpserver,ftpserver,nimserver,ipforward,dhcpinterfaces,proxydhcp,comments,disable"),
		Keys: []string{"node"}, Descr: "List of all Service Nodes and services that will be set up on the Service Node."},
	{Name: "postscripts", Columns: cols("#node,postscripts,postbootscripts,comments,disable"),
		Keys: []string{"node"}, Descr: "The scripts that should be run on each node after installation or diskless boot."},
	{Name: "bootparams", Columns: cols("#node,kernel,initrd,kcmdline,addkcmdline,dhcpstatements,adddhcpstatements,comments,disable"),
		Keys: []string{"node"}, Descr: "Current boot settings to be sent to systems attempting network boot for deployment, stateless, or other reasons."},
	{Name: "nics", Columns: cols("#node,nicips,nichostnamesuffixes,nichostnameprefixes,nictypes,niccustomscripts,nicnetworks,nicaliases,nicextraparams,nicdevices,nicsadapter,comments,disable"),
		Keys: []string{"node"}, Descr: "Stores NIC details."},
	{Name: "statelite", Columns: cols("#node,image,statemnt,mntopts,comments,disable"),
		Keys: []string{"node"}, NotNull: []string{"statemnt"}, Descr: "The location on an NFS server where a nodes persistent files are stored."},
	{Name: "litefile", Columns: cols("#image,file,options,comments,disable"),
		Keys: []string{"image", "file"}, Descr: "The litefile table specifies the directories and files on the statelite nodes that should be readwrite, persistent, or readonly overlay."},
	{Name: "litetree", Columns: cols("#priority,image,directory,mntopts,comments,disable"),
		Keys: []string{"priority"}, Descr: "Directory hierarchy to traverse to get the initial contents of node files."},
	{Name: "switch", Columns: cols("#node,switch,port,vlan,interface,comments,disable"),
		Keys: []string{"node", "switch", "port"}, Descr: "Contains what switch port numbers each node is connected to."},
	{Name: "switches", Columns: cols("#switch,snmpversion,username,password,privacy,auth,linkports,sshusername,sshpassword,protocol,switchtype,comments,disable"),
		Keys: []string{"switch"}, Descr: "Parameters to use when interrogating switches."},
	{Name: "hwinv", Columns: cols("#node,cputype,cpucount,memory,disksize,comments,disable"),
		Keys: []string{"node"}, Descr: "The hareware inventory for the node."},
	{Name: "discoverydata", Columns: cols("#uuid,node,method,discoverytime,arch,cpucount,cputype,memory,mtm,serial,nicdriver,nicipv4,nichwaddr,nicpci,nicloc,niconboard,nicfirm,switchname,switchaddr,switchdesc,switchport,otherdata,comments,disable"),
		Keys: []string{"uuid"}, Descr: "Discovery data which sent from genesis."},
}

// Tables returns the schema: every table provkit knows, in a stable order.
func Tables() []Table {
	out := make([]Table, len(schema))
	copy(out, schema)
	return out
}

// TableNames returns the table names sorted, as `tabdump` with no argument prints them.
func TableNames() []string {
	names := make([]string, len(schema))
	for i := range schema {
		names[i] = schema[i].Name
	}
	slices.Sort(names)
	return names
}

// LookupTable returns the table called name.
func LookupTable(name string) (*Table, bool) {
	for i := range schema {
		if schema[i].Name == name {
			return &schema[i], true
		}
	}
	return nil, false
}

// IsDisabled reports whether a value of the disable column marks its row disabled: anything
// but unset, "0" or any case of "no".
func IsDisabled(v string) bool {
	return v != "" && v != "0" && !strings.EqualFold(v, "no")
}
