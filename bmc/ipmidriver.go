package bmc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	bmclibbmc "github.com/bmc-toolbox/bmclib/v2/bmc"
	"github.com/bmc-toolbox/bmclib/v2/providers"
	"github.com/jacobweinstock/registrar"

	"github.com/provkit/provkit/bmc/ipmi"
	"github.com/provkit/provkit/bmc/ipmi/lanplus"
)

// LanplusProvider is the bmclib provider name of the native IPMI client.
const LanplusProvider = "lanplus"

// lanplusFeatures are the bmclib features the native provider implements.
var lanplusFeatures = registrar.Features{
	providers.FeaturePowerState,
	providers.FeaturePowerSet,
	providers.FeatureBootDeviceSet,
}

// lanplusDriver is a bmclib provider over package lanplus: Open starts an RMCP+ session,
// which stays open for every later command until Close.
type lanplusDriver struct {
	cfg  lanplus.Config
	sess *lanplus.Session
}

var (
	_ Driver                             = (*lanplusDriver)(nil)
	_ bmclibbmc.BootDeviceSetter         = (*lanplusDriver)(nil)
	_ bmclibbmc.BootDeviceOverrideGetter = (*lanplusDriver)(nil)
)

func (d *lanplusDriver) Name() string { return LanplusProvider }

func (d *lanplusDriver) Open(ctx context.Context) error {
	if d.sess != nil {
		return nil
	}
	s, err := lanplus.Open(ctx, d.cfg)
	if err != nil {
		return err
	}
	d.sess = s
	return nil
}

func (d *lanplusDriver) Close(ctx context.Context) error {
	if d.sess == nil {
		return nil
	}
	err := d.sess.Close(ctx)
	d.sess = nil
	return err
}

// abandon drops a session that is probably dead without waiting for the BMC.
func (d *lanplusDriver) abandon() {
	if d.sess != nil {
		d.sess.Abandon()
		d.sess = nil
	}
}

var errNotOpen = errors.New("lanplus: session not open")

func (d *lanplusDriver) PowerStateGet(ctx context.Context) (string, error) {
	if d.sess == nil {
		return "", errNotOpen
	}
	st, err := d.sess.ChassisStatus(ctx)
	if err != nil {
		return "", err
	}
	if st.PowerOn {
		return "on", nil
	}
	return "off", nil
}

func (d *lanplusDriver) PowerSet(ctx context.Context, state string) (bool, error) {
	if d.sess == nil {
		return false, errNotOpen
	}
	var c ipmi.ChassisControl
	switch strings.ToLower(state) {
	case "on":
		c = ipmi.PowerUp
	case "off":
		c = ipmi.PowerDown
	case "soft":
		c = ipmi.SoftShutdown
	case "reset":
		c = ipmi.HardReset
	case "cycle":
		c = ipmi.PowerCycle
	default:
		return false, fmt.Errorf("lanplus: power state %q: %w", state, ErrUnsupported)
	}
	if err := d.sess.ChassisControl(ctx, c); err != nil {
		return false, err
	}
	return true, nil
}

func (d *lanplusDriver) BootDeviceSet(ctx context.Context, device string, persistent, efi bool) (bool, error) {
	if d.sess == nil {
		return false, errNotOpen
	}
	f := ipmi.BootFlags{Valid: true, Persistent: persistent, EFI: efi}
	switch strings.ToLower(device) {
	case "pxe":
		f.Device = ipmi.BootPXE
	case "disk":
		f.Device = ipmi.BootDisk
	case "cdrom":
		f.Device = ipmi.BootCD
	case "bios":
		f.Device = ipmi.BootSetup
	case "floppy":
		f.Device = ipmi.BootFloppy
	case "none":
		f = ipmi.BootFlags{} // clear the override, as xCAT's "rsetboot default" does
	default:
		return false, fmt.Errorf("lanplus: boot device %q: %w", device, ErrUnsupported)
	}
	if err := d.sess.SetBootFlags(ctx, f); err != nil {
		return false, err
	}
	return true, nil
}

func (d *lanplusDriver) BootDeviceOverrideGet(ctx context.Context) (bmclibbmc.BootDeviceOverride, error) {
	if d.sess == nil {
		return bmclibbmc.BootDeviceOverride{}, errNotOpen
	}
	f, err := d.sess.BootFlags(ctx)
	if err != nil {
		return bmclibbmc.BootDeviceOverride{}, err
	}
	o := bmclibbmc.BootDeviceOverride{IsPersistent: f.Persistent, IsEFIBoot: f.EFI, Device: bmclibbmc.BootDeviceTypeNone}
	if !f.Valid {
		return o, nil
	}
	switch f.Device {
	case ipmi.BootPXE:
		o.Device = bmclibbmc.BootDeviceTypePXE
	case ipmi.BootDisk, ipmi.BootDiskSafe:
		o.Device = bmclibbmc.BootDeviceTypeDisk
	case ipmi.BootCD, ipmi.BootRemoteCD:
		o.Device = bmclibbmc.BootDeviceTypeCDROM
	case ipmi.BootSetup:
		o.Device = bmclibbmc.BootDeviceTypeBIOS
	case ipmi.BootFloppy, ipmi.BootRemoteFloppy:
		o.Device = bmclibbmc.BootDeviceTypeFloppy
	case ipmi.BootDiag:
		o.Device = bmclibbmc.BootDeviceTypeDiag
	}
	return o, nil
}
