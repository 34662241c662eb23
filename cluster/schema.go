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
	// NodeCol names the column that holds node (or group) names when that is not a
	// first key column called "node": Schema.pm's nodecol (switches.switch, ppchcp.hcp,
	// mpa.mpa, ...).
	NodeCol string
	// Bulk marks tables of logs and plugin caches (eventlog, auditlog, kvm_nodedata, ...)
	// that grow without bound or hold large values: views do not load them; tabdump,
	// tabrestore and the Tx methods read and write them like any other table.
	Bulk bool
}

// NodeColumn returns the column of t that holds node (or group) names: NodeCol, else "node"
// when it is t's first key column, else "" (the table is not per node).
func (t *Table) NodeColumn() string {
	switch {
	case t.NodeCol != "":
		return t.NodeCol
	case len(t.Keys) >= 1 && t.Keys[0] == "node":
		return "node"
	}
	return ""
}

// NodeKeyed reports whether rows of t are keyed by node name (in NodeColumn), so that they
// may hold group rows that nodes inherit from (every such table except nodelist).
func (t *Table) NodeKeyed() bool {
	return t.Name != "nodelist" && t.NodeColumn() != ""
}

// HasColumn reports whether t has column c.
func (t *Table) HasColumn(c string) bool { return slices.Contains(t.Columns, c) }

// IsKey reports whether c is one of t's key columns.
func (t *Table) IsKey(c string) bool { return slices.Contains(t.Keys, c) }

// cols builds a column list from xCAT's tabdump header, minus the "#".
func cols(header string) []string {
	return strings.Split(strings.TrimPrefix(header, "#"), ",")
}

// schema is xCAT's table model: every table of %tabspec in perl-xCAT/xCAT/Schema.pm
// (@ 7733d16f8de0, see shared/xcat/schema.md), with its columns in Schema.pm's order (the
// tabdump header), keys, required columns (NotNull), nodecol (NodeCol) and the first
// sentence of its table_desc. The tables provkit's commands use come first, in the order
// they were added; the rest follow in Schema.pm's order. Existing tables are never
// reordered or renamed: stores migrate by adding tables and columns only.
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
		Keys: []string{"priority"}, NotNull: []string{"directory"}, Descr: "Directory hierarchy to traverse to get the initial contents of node files."},
	{Name: "switch", Columns: cols("#node,switch,port,vlan,interface,comments,disable"),
		Keys: []string{"node", "switch", "port"}, Descr: "Contains what switch port numbers each node is connected to."},
	{Name: "switches", Columns: cols("#switch,snmpversion,username,password,privacy,auth,linkports,sshusername,sshpassword,protocol,switchtype,comments,disable"),
		Keys: []string{"switch"}, NodeCol: "switch", Descr: "Parameters to use when interrogating switches."},
	{Name: "hwinv", Columns: cols("#node,cputype,cpucount,memory,disksize,comments,disable"),
		Keys: []string{"node"}, Descr: "The hareware inventory for the node."},
	{Name: "discoverydata", Columns: cols("#uuid,node,method,discoverytime,arch,cpucount,cputype,memory,mtm,serial,nicdriver,nicipv4,nichwaddr,nicpci,nicloc,niconboard,nicfirm,switchname,switchaddr,switchdesc,switchport,otherdata,comments,disable"),
		Keys: []string{"uuid"}, Bulk: true, Descr: "Discovery data which sent from genesis."},

	// The rest of Schema.pm's %tabspec, in its order.
	{Name: "domain", Columns: cols("#node,ou,authdomain,adminuser,adminpassword,type,comments,disable"),
		Keys: []string{"node"}, Descr: "Mapping of nodes to domain attributes."},
	{Name: "kvm_nodedata", Columns: cols("#node,xml,comments,disable"),
		Keys: []string{"node"}, Bulk: true, Descr: "Persistent store for KVM plugin, not intended for manual modification."},
	{Name: "kvm_masterdata", Columns: cols("#name,xml,comments,disable"),
		Keys: []string{"name"}, NodeCol: "name", Bulk: true, Descr: "Persistent store for KVM plugin for masters."},
	{Name: "vmmaster", Columns: cols("#name,os,arch,profile,storage,storagemodel,nics,vintage,originator,virttype,specializeparameters,comments,disable"),
		Keys: []string{"name"}, NodeCol: "name", Descr: "Inventory of virtualization images for use with clonevm."},
	{Name: "vm", Columns: cols("#node,mgr,host,migrationdest,storage,storagemodel,storagecache,storageformat,cfgstore,memory,cpus,nics,nicmodel,bootorder,clockoffset,virtflags,master,vncport,textconsole,powerstate,beacon,datacenter,cluster,guestostype,othersettings,physlots,vidmodel,vidproto,vidpassword,comments,disable"),
		Keys: []string{"node"}, Descr: "Virtualization parameters."},
	{Name: "hypervisor", Columns: cols("#node,type,mgr,interface,netmap,defaultnet,cluster,datacenter,preferdirect,comments,disable"),
		Keys: []string{"node"}, Descr: "Hypervisor parameters."},
	{Name: "virtsd", Columns: cols("#node,sdtype,stype,location,host,cluster,datacenter,comments,disable"),
		Keys: []string{"node"}, Descr: "The parameters which used to create the Storage Domain."},
	{Name: "storage", Columns: cols("#node,osvolume,size,state,storagepool,hypervisor,fcprange,volumetag,type,controller,comments,disable"),
		Keys: []string{"node"}, Descr: "Node storage resources."},
	{Name: "websrv", Columns: cols("#node,port,username,password,comments,disable"),
		Keys: []string{"node"}, Descr: "Web service parameters."},
	{Name: "boottarget", Columns: cols("#bprofile,kernel,initrd,kcmdline,comments,disable"),
		Keys: []string{"bprofile"}, Descr: "Specify non-standard initrd, kernel, and parameters that should be used for a given profile."},
	{Name: "prodkey", Columns: cols("#node,product,key,comments,disable"),
		Keys: []string{"node", "product"}, Descr: "Specify product keys for products that require them."},
	{Name: "deps", Columns: cols("#node,nodedep,msdelay,cmd,comments,disable"),
		Keys: []string{"node", "cmd"}, Descr: "Describes dependencies some nodes have on others."},
	{Name: "iscsi", Columns: cols("#node,server,target,lun,iname,file,userid,passwd,kernel,kcmdline,initrd,comments,disable"),
		Keys: []string{"node"}, Descr: "Contains settings that control how to boot a node from an iSCSI target."},
	{Name: "monitoring", Columns: cols("#name,nodestatmon,comments,disable"),
		Keys: []string{"name"}, Descr: "Controls what external monitoring tools xCAT sets up and uses."},
	{Name: "monsetting", Columns: cols("#name,key,value,comments,disable"),
		Keys: []string{"name", "key"}, Descr: "Specifies the monitoring plug-in specific settings."},
	{Name: "mp", Columns: cols("#node,mpa,id,nodetype,comments,disable"),
		Keys: []string{"node"}, Descr: "Contains the hardware control info specific to blades."},
	{Name: "mpa", Columns: cols("#mpa,username,password,displayname,slots,urlpath,comments,disable"),
		Keys: []string{"mpa", "username"}, NodeCol: "mpa", Descr: "Contains info about each Management Module and how to access it."},
	{Name: "pdu", Columns: cols("#node,nodetype,pdutype,outlet,username,password,snmpversion,community,snmpuser,authtype,authkey,privtype,privkey,seclevel,comments,disable"),
		Keys: []string{"node"}, NodeCol: "node", Descr: "Parameters to use when interrogating pdus."},
	{Name: "notification", Columns: cols("#filename,tables,tableops,comments,disable"),
		Keys: []string{"filename"}, NotNull: []string{"tables"}, Descr: "Contains registrations to be notified when a table in the xCAT database changes."},
	{Name: "winimage", Columns: cols("#imagename,template,installto,partitionfile,winpepath,comments,disable"),
		Keys: []string{"imagename"}, Descr: "Information about a Windows operating system image that can be used to deploy cluster nodes."},
	{Name: "ppc", Columns: cols("#node,hcp,id,pprofile,parent,nodetype,supernode,sfp,comments,disable"),
		Keys: []string{"node"}, Descr: "List of system p hardware: HMCs, IVMs, FSPs, BPCs, CECs, Frames."},
	{Name: "ppcdirect", Columns: cols("#hcp,username,password,comments,disable"),
		Keys: []string{"hcp", "username"}, NodeCol: "hcp", Descr: "Info necessary to use FSPs/BPAs to control system p CECs/Frames."},
	{Name: "ppchcp", Columns: cols("#hcp,username,password,comments,disable"),
		Keys: []string{"hcp"}, NodeCol: "hcp", Descr: "Info necessary to use HMCs and IVMs as hardware control points for LPARs."},
	{Name: "pduoutlet", Columns: cols("#node,pdu,comments,disable"),
		Keys: []string{"node"}, Descr: "Contains list of outlet numbers on the pdu each node is connected to."},
	{Name: "nimimage", Columns: cols("#imagename,nimtype,lpp_source,spot,root,dump,paging,resolv_conf,tmp,home,shared_home,res_group,nimmethod,script,bosinst_data,installp_bundle,mksysb,fb_script,shared_root,otherpkgs,image_data,configdump,comments,disable"),
		Keys: []string{"imagename"}, Descr: "All the info that specifies a particular AIX operating system image that can be used to deploy AIX nodes."},
	{Name: "performance", Columns: cols("#timestamp,node,attrname,attrvalue,comments,disable"),
		Keys: []string{"timestamp", "node", "attrname"}, Bulk: true, Descr: "Describes the system performance every interval unit of time."},
	{Name: "zone", Columns: cols("#zonename,sshkeydir,sshbetweennodes,defaultzone,comments,disable"),
		Keys: []string{"zonename"}, Descr: "Defines a cluster zone for nodes that share root ssh key access to each other."},
	{Name: "eventlog", Columns: cols("#recid,eventtime,eventtype,monitor,monnode,node,application,component,id,severity,message,rawdata,comments,disable"),
		Keys: []string{"recid"}, Bulk: true, Descr: "Stores the events occurred."},
	{Name: "auditlog", Columns: cols("#recid,audittime,userid,clientname,clienttype,command,noderange,args,status,comments,disable"),
		Keys: []string{"recid"}, Bulk: true, Descr: "Audit Data log."},
	{Name: "prescripts", Columns: cols("#node,begin,end,comments,disable"),
		Keys: []string{"node"}, Descr: "The scripts that will be run at the beginning and the end of the nodeset(Linux), nimnodeset(AIX) or mkdsklsnode(AIX) command."},
	{Name: "routes", Columns: cols("#routename,net,mask,gateway,ifname,comments,disable"),
		Keys: []string{"routename"}, Descr: "Describes the additional routes needed to be setup in the os routing table."},
	{Name: "zvmivp", Columns: cols("#id,ip,schedule,last_run,type_of_run,access_user,orch_parms,prep_parms,main_ivp_parms,comments,disable"),
		Keys: []string{"id"}, Descr: "List of z/VM Installation Verification Procedures (IVPs) to be periodically run."},
	// Schema.pm lists discovered and status after comments and disable; tabdump keeps that order.
	{Name: "zvm", Columns: cols("#node,hcp,userid,nodetype,parent,comments,disable,discovered,status"),
		Keys: []string{"node"}, Descr: "List of z/VM virtual servers."},
	{Name: "firmware", Columns: cols("#node,cfgfile,comments,disable"),
		Keys: []string{"node"}, Descr: "Maps node to firmware values to be used for setup at node discovery or later."},
	{Name: "rack", Columns: cols("#rackname,displayname,num,height,room,comments,disable"),
		Keys: []string{"rackname"}, Descr: "Rack information."},
	{Name: "osdistro", Columns: cols("#osdistroname,basename,majorversion,minorversion,arch,type,dirpaths,comments,disable"),
		Keys: []string{"osdistroname"}, Descr: "Information about all the OS distros in the xCAT cluster."},
	{Name: "osdistroupdate", Columns: cols("#osupdatename,osdistroname,dirpath,downloadtime,comments,disable"),
		Keys: []string{"osupdatename"}, Descr: "Information about the OS distro updates in the xCAT cluster."},
	{Name: "kit", Columns: cols("#kitname,basename,description,version,release,ostype,isinternal,kitdeployparams,kitdir,comments,disable"),
		Keys: []string{"kitname"}, Descr: "This table stores all kits added to the xCAT cluster."},
	{Name: "kitrepo", Columns: cols("#kitreponame,kitname,osbasename,osmajorversion,osminorversion,osarch,compat_osbasenames,kitrepodir,comments,disable"),
		Keys: []string{"kitreponame"}, Descr: "This table stores all kits added to the xCAT cluster."},
	{Name: "kitcomponent", Columns: cols("#kitcompname,description,kitname,kitreponame,basename,version,release,serverroles,kitpkgdeps,prerequisite,driverpacks,kitcompdeps,postbootscripts,genimage_postinstall,exlist,comments,disable"),
		Keys: []string{"kitcompname"}, Descr: "This table stores all kit components added to the xCAT cluster."},
	{Name: "cfgmgt", Columns: cols("#node,cfgmgr,cfgserver,roles,comments,disable"),
		Keys: []string{"node"}, Descr: "Configuration management data for nodes used by non-xCAT osimage management services to install and configure software on a node."},
	{Name: "mic", Columns: cols("#node,host,id,nodetype,bridge,onboot,vlog,powermgt,comments,disable"),
		Keys: []string{"node"}, Descr: "The host, slot id and configuration of the mic (Many Integrated Core)."},
	{Name: "token", Columns: cols("#tokenid,username,expire,created,access,comments,disable"),
		Keys: []string{"tokenid"}, Descr: "The token of users for authentication."},
	// Schema.pm gives taskstate no comments column.
	{Name: "taskstate", Columns: cols("#node,command,state,pid,reserve,disable"),
		Keys: []string{"node"}, Descr: "The task state for the node."},
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
