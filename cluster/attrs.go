package cluster

import (
	"fmt"
	"strings"
)

// An AttrDef maps an object attribute, as lsdef/mkdef/chdef name it, to a table column.
type AttrDef struct {
	Name   string // attribute name, e.g. "ip"
	Table  string // e.g. "hosts"
	Column string // e.g. "ip"
	// Key is the column of Table that holds the object's name ("node" for node
	// attributes, "imagename" for osimage attributes, ...).
	Key string
	// OnlyIf, when set, is "attr=value": the attribute exists only when the object's
	// attribute attr resolves to value (e.g. bmc maps to ipmi.bmc only when mgt=ipmi).
	OnlyIf string
}

// An ObjectType is a kind of object definition: node, group, network, osimage, site or
// policy, with its attributes in xCAT's order.
type ObjectType struct {
	Name string
	// Table and NameColumn hold the object names (nodelist.node for nodes).
	Table, NameColumn string
	Attrs             []AttrDef
}

// Attr returns the attribute definitions called name (several when only_if conditions
// select between tables, like bmc for ipmi and openbmc).
func (o *ObjectType) Attr(name string) []AttrDef {
	var out []AttrDef
	for _, a := range o.Attrs {
		if a.Name == name {
			out = append(out, a)
		}
	}
	return out
}

// nodeAttrText is the node object's attribute map from xCAT's Schema.pm %defspec
// (shared/xcat/schema.md §2), in its order. Each line is "attribute table.column [only_if]".
// It is data: resolution code has no per-attribute cases. Left out: passwd.HMC,
// passwd.hscroot, passwd.admin, passwd.general and passwd.celogin (ppcdirect.password
// looked up by hcp and a fixed username, which AttrDef cannot express). Schema.pm looks up
// hwtype=zvm.nodetype (mgt=zvm) by ppc.node; here it is zvm's own node row.
const nodeAttrText = `
node nodelist.node
groups nodelist.groups
status nodelist.status
statustime nodelist.statustime
appstatus nodelist.appstatus
appstatustime nodelist.appstatustime
primarysn nodelist.primarysn
hidden nodelist.hidden
updatestatus nodelist.updatestatus
updatestatustime nodelist.updatestatustime
zonename nodelist.zonename
usercomment nodelist.comments
nodetype nodetype.nodetype
postscripts postscripts.postscripts
postbootscripts postscripts.postbootscripts
xcatmaster noderes.xcatmaster
servicenode noderes.servicenode
tftpserver noderes.tftpserver
tftpdir noderes.tftpdir
nfsserver noderes.nfsserver
nimserver noderes.nimserver
nfsdir noderes.nfsdir
monserver noderes.monserver
supportproxydhcp noderes.proxydhcp
syslog noderes.syslog
kernel bootparams.kernel
initrd bootparams.initrd
kcmdline bootparams.kcmdline
addkcmdline bootparams.addkcmdline
primarynic noderes.primarynic
installnic noderes.installnic
netboot noderes.netboot
nameservers noderes.nameservers
routenames noderes.routenames
setupnameserver servicenode.nameserver
setupdhcp servicenode.dhcpserver
setuptftp servicenode.tftpserver
setupnfs servicenode.nfsserver
setupconserver servicenode.conserver
setupipforward servicenode.ipforward
setupproxydhcp servicenode.proxydhcp
setupldap servicenode.ldapserver
setupntp servicenode.ntpserver
setupftp servicenode.ftpserver
setupnim servicenode.nimserver
dhcpinterfaces servicenode.dhcpinterfaces
arch nodetype.arch
supportedarchs nodetype.supportedarchs
os nodetype.os
profile nodetype.profile
provmethod nodetype.provmethod
iscsiserver iscsi.server
iscsitarget iscsi.target
iscsiuserid iscsi.userid
iscsipassword iscsi.passwd
mgt nodehm.mgt
power nodehm.power
cons nodehm.cons
termserver nodehm.termserver
termport nodehm.termport
conserver nodehm.conserver
getmac nodehm.getmac
cmdmapping nodehm.cmdmapping
serialport nodehm.serialport
serialspeed nodehm.serialspeed
serialflow nodehm.serialflow
consoleondemand nodehm.consoleondemand
consoleenabled nodehm.consoleenabled
serial vpd.serial
mtm vpd.mtm
side vpd.side
interface mac.interface
mac mac.mac
chain chain.chain
ondiscover chain.ondiscover
currstate chain.currstate
currchain chain.currchain
username ppchcp.username nodetype=ivm
password ppchcp.password nodetype=ivm
username ppchcp.username nodetype=hmc
password ppchcp.password nodetype=hmc
username ppchcp.username nodetype=ppc
password ppchcp.password nodetype=ppc
hcp ppc.hcp
id ppc.id
pprofile ppc.pprofile mgt=hmc
pprofile ppc.pprofile mgt=ivm
pprofile ppc.pprofile mgt=fsp
parent ppc.parent mgt=hmc
parent ppc.parent mgt=ivm
parent ppc.parent mgt=bpa
parent ppc.parent mgt=fsp
hwtype ppc.nodetype mgt=fsp
hwtype ppc.nodetype mgt=bpa
hwtype ppc.nodetype mgt=ivm
hwtype ppc.nodetype mgt=hmc
hwtype zvm.nodetype mgt=zvm
hwtype mp.nodetype mgt=blade
hwtype mp.nodetype mgt=ipmi
hwtype mp.nodetype mgt=openbmc
supernode ppc.supernode
sfp ppc.sfp
hcp zvm.hcp mgt=zvm
userid zvm.userid mgt=zvm
bmc ipmi.bmc mgt=ipmi
bmcport ipmi.bmcport mgt=ipmi
bmcusername ipmi.username mgt=ipmi
bmcpassword ipmi.password mgt=ipmi
bmcvlantag ipmi.taggedvlan mgt=ipmi
mpa mp.mpa
slotid mp.id mgt=fsp
id mp.id mgt=blade
slotid mp.id mgt=ipmi
username mpa.username nodetype=mm
password mpa.password nodetype=mm
displayname mpa.displayname nodetype=mm
slots mpa.slots nodetype=mm
urlpath mpa.urlpath nodetype=mm
bmc openbmc.bmc mgt=openbmc
bmcusername openbmc.username mgt=openbmc
bmcpassword openbmc.password mgt=openbmc
consport openbmc.consport mgt=openbmc
bmcvlantag openbmc.taggedvlan mgt=openbmc
rack nodepos.rack
unit nodepos.u
chassis nodepos.chassis
slot nodepos.slot
room nodepos.room
height nodepos.height
nicips nics.nicips
nichostnamesuffixes nics.nichostnamesuffixes
nichostnameprefixes nics.nichostnameprefixes
nictypes nics.nictypes
niccustomscripts nics.niccustomscripts
nicnetworks nics.nicnetworks
nicaliases nics.nicaliases
nicextraparams nics.nicextraparams
nicdevices nics.nicdevices
nicsadapter nics.nicsadapter
productkey prodkey.key
ou domain.ou
domainadminuser domain.adminuser
domainadminpassword domain.adminpassword
authdomain domain.authdomain
domaintype domain.type
osvolume storage.osvolume
storagcontroller storage.controller
storagetype storage.type
vmmanager vm.mgr
vmhost vm.host
migrationdest vm.migrationdest
vmstorage vm.storage
vmphyslots vm.physlots
vmothersetting vm.othersettings
vmstoragemodel vm.storagemodel
vmstoragecache vm.storagecache
vmstorageformat vm.storageformat
vmcfgstore vm.cfgstore
vmmemory vm.memory
vmcpus vm.cpus
vmnics vm.nics
vmnicnicmodel vm.nicmodel
vmbootorder vm.bootorder
vmvirtflags vm.virtflags
vmmaster vm.master
vmvncport vm.vncport
vmtextconsole vm.textconsole
vmbeacon vm.beacon
vmcluster vm.cluster
hosttype hypervisor.type
hostinterface hypervisor.interface
hostmanager hypervisor.mgr
hostcluster hypervisor.cluster
webport websrv.port nodetype=websrv
username websrv.username nodetype=websrv
password websrv.password nodetype=websrv
pdu pduoutlet.pdu
switch switch.switch
switchport switch.port
switchvlan switch.vlan
switchinterface switch.interface
ip hosts.ip
hostnames hosts.hostnames
otherinterfaces hosts.otherinterfaces
prescripts-begin prescripts.begin
prescripts-end prescripts.end
cfgmgr cfgmgt.cfgmgr
cfgserver cfgmgt.cfgserver
cfgmgtroles cfgmgt.roles
michost mic.host mgt=mic
micid mic.id mgt=mic
hwtype mic.nodetype mgt=mic
micbridge mic.bridge mgt=mic
miconboot mic.onboot mgt=mic
micvlog mic.vlog mgt=mic
micpowermgt mic.powermgt mgt=mic
cputype hwinv.cputype
cpucount hwinv.cpucount
memory hwinv.memory
disksize hwinv.disksize
nodetype pdu.nodetype nodetype=pdu
pdutype pdu.pdutype nodetype=pdu
outlet pdu.outlet nodetype=pdu
username pdu.username nodetype=pdu
password pdu.password nodetype=pdu
snmpversion pdu.snmpversion nodetype=pdu
community pdu.community nodetype=pdu
snmpuser pdu.snmpuser nodetype=pdu
authtype pdu.authtype nodetype=pdu
authkey pdu.authkey nodetype=pdu
privtype pdu.privtype nodetype=pdu
privkey pdu.privkey nodetype=pdu
seclevel pdu.seclevel nodetype=pdu
snmpusername switches.username nodetype=switch
snmppassword switches.password nodetype=switch
snmpversion switches.snmpversion nodetype=switch
snmpprivacy switches.privacy nodetype=switch
snmpauth switches.auth nodetype=switch
linkports switches.linkports nodetype=switch
username switches.sshusername nodetype=switch
password switches.sshpassword nodetype=switch
protocol switches.protocol nodetype=switch
switchtype switches.switchtype nodetype=switch
`

const groupAttrText = `
groupname nodegroup.groupname
grouptype nodegroup.grouptype
members nodegroup.members
membergroups nodegroup.membergroups
wherevals nodegroup.wherevals
usercomment nodegroup.comments
`

const networkAttrText = `
netname networks.netname
net networks.net
mask networks.mask
mgtifname networks.mgtifname
gateway networks.gateway
dhcpserver networks.dhcpserver
tftpserver networks.tftpserver
nameservers networks.nameservers
ntpservers networks.ntpservers
logservers networks.logservers
dynamicrange networks.dynamicrange
nodehostname networks.nodehostname
ddnsdomain networks.ddnsdomain
vlanid networks.vlanid
domain networks.domain
staticrange networks.staticrange
staticrangeincrement networks.staticrangeincrement
mtu networks.mtu
usercomment networks.comments
`

const osimageAttrText = `
imagename osimage.imagename
groups osimage.groups
imagetype osimage.imagetype
description osimage.description
provmethod osimage.provmethod
osdistroname osimage.osdistroname
osupdatename osimage.osupdatename
cfmdir osimage.cfmdir
rootfstype osimage.rootfstype imagetype=linux
nfsrootopts osimage.nfsrootopts imagetype=linux
profile osimage.profile
osname osimage.osname
osvers osimage.osvers
osarch osimage.osarch
synclists osimage.synclists
postscripts osimage.postscripts
postbootscripts osimage.postbootscripts
serverrole osimage.serverrole
isdeletable osimage.isdeletable
kitcomponents osimage.kitcomponents
template linuximage.template imagetype=linux
boottarget linuximage.boottarget imagetype=linux
addkcmdline linuximage.addkcmdline imagetype=linux
pkglist linuximage.pkglist imagetype=linux
pkgdir linuximage.pkgdir imagetype=linux
otherpkglist linuximage.otherpkglist imagetype=linux
otherpkgdir linuximage.otherpkgdir imagetype=linux
exlist linuximage.exlist imagetype=linux
postinstall linuximage.postinstall imagetype=linux
rootimgdir linuximage.rootimgdir imagetype=linux
kerneldir linuximage.kerneldir imagetype=linux
nodebootif linuximage.nodebootif imagetype=linux
otherifce linuximage.otherifce imagetype=linux
netdrivers linuximage.netdrivers imagetype=linux
kernelver linuximage.kernelver imagetype=linux
krpmver linuximage.krpmver imagetype=linux
permission linuximage.permission imagetype=linux
dump linuximage.dump imagetype=linux
crashkernelsize linuximage.crashkernelsize imagetype=linux
partitionfile linuximage.partitionfile imagetype=linux
driverupdatesrc linuximage.driverupdatesrc imagetype=linux
usercomment linuximage.comments imagetype=linux
template winimage.template imagetype=windows
installto winimage.installto imagetype=windows
partitionfile winimage.partitionfile imagetype=windows
winpepath winimage.winpepath imagetype=windows
nimtype nimimage.nimtype imagetype=NIM
nimmethod nimimage.nimmethod imagetype=NIM
lpp_source nimimage.lpp_source imagetype=NIM
spot nimimage.spot imagetype=NIM
root nimimage.root imagetype=NIM
dump nimimage.dump imagetype=NIM
configdump nimimage.configdump imagetype=NIM
paging nimimage.paging imagetype=NIM
resolv_conf nimimage.resolv_conf imagetype=NIM
image_data nimimage.image_data imagetype=NIM
tmp nimimage.tmp imagetype=NIM
home nimimage.home imagetype=NIM
shared_home nimimage.shared_home imagetype=NIM
shared_root nimimage.shared_root imagetype=NIM
script nimimage.script imagetype=NIM
fb_script nimimage.fb_script imagetype=NIM
bosinst_data nimimage.bosinst_data imagetype=NIM
installp_bundle nimimage.installp_bundle imagetype=NIM
otherpkgs nimimage.otherpkgs imagetype=NIM
mksysb nimimage.mksysb imagetype=NIM
usercomment nimimage.comments imagetype=NIM
environvar osimage.environvar
`

const policyAttrText = `
priority policy.priority
name policy.name
host policy.host
commands policy.commands
noderange policy.noderange
parameters policy.parameters
time policy.time
rule policy.rule
usercomment policy.comments
`

// parseAttrs turns one of the attribute texts above into definitions whose Key is key.
func parseAttrs(text, key string) []AttrDef {
	var out []AttrDef
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		tab, col, _ := strings.Cut(f[1], ".")
		a := AttrDef{Name: f[0], Table: tab, Column: col, Key: key}
		if len(f) > 2 {
			a.OnlyIf = f[2]
		}
		t, ok := LookupTable(tab)
		if !ok || !t.HasColumn(col) {
			panic(fmt.Sprintf("cluster: attribute %s maps to unknown column %s.%s", a.Name, tab, col))
		}
		if key == "node" && t.NodeKeyed() {
			a.Key = t.NodeColumn() // switches.switch, ppchcp.hcp, mpa.mpa
		}
		out = append(out, a)
	}
	return out
}

// objectTypes are the object kinds of lsdef -t. They are never modified after package
// initialisation.
var objectTypes = []ObjectType{
	{Name: "node", Table: "nodelist", NameColumn: "node", Attrs: parseAttrs(nodeAttrText, "node")},
	// A group has nodegroup's attributes plus every node attribute, stored in the
	// node-keyed tables with node=<group name>.
	{Name: "group", Table: "nodegroup", NameColumn: "groupname", Attrs: append(parseAttrs(groupAttrText, "groupname"), groupNodeAttrs()...)},
	{Name: "network", Table: "networks", NameColumn: "netname", Attrs: parseAttrs(networkAttrText, "netname")},
	{Name: "osimage", Table: "osimage", NameColumn: "imagename", Attrs: parseAttrs(osimageAttrText, "imagename")},
	{Name: "site", Table: "site", NameColumn: "key"},
	{Name: "policy", Table: "policy", NameColumn: "priority", Attrs: parseAttrs(policyAttrText, "priority")},
}

// groupNodeAttrs are the node attributes a group object carries (all but nodelist's, which
// is never a group row).
func groupNodeAttrs() []AttrDef {
	var out []AttrDef
	for _, a := range parseAttrs(nodeAttrText, "node") {
		if a.Table != "nodelist" {
			out = append(out, a)
		}
	}
	return out
}

// ObjectTypes returns the object kinds lsdef knows.
func ObjectTypes() []string {
	out := make([]string, len(objectTypes))
	for i := range objectTypes {
		out[i] = objectTypes[i].Name
	}
	return out
}

// LookupObjectType returns the object kind called name.
func LookupObjectType(name string) (*ObjectType, error) {
	for i := range objectTypes {
		if objectTypes[i].Name == name {
			return &objectTypes[i], nil
		}
	}
	return nil, fmt.Errorf("%q is not a valid object type (valid: %s)", name, strings.Join(ObjectTypes(), ", "))
}
