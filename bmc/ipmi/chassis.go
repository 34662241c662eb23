package ipmi

import (
	"fmt"
)

// ChassisStatus is the answer to Get Chassis Status.
type ChassisStatus struct {
	PowerOn       bool
	PowerOverload bool
	Interlock     bool
	PowerFault    bool
	ControlFault  bool
	RestorePolicy uint8 // 0 stays off, 1 restores the previous state, 2 powers on, 3 unknown
	LastEvent     uint8
	Misc          uint8
}

// ParseChassisStatus parses the data of a Get Chassis Status response.
func ParseChassisStatus(data []byte) (ChassisStatus, error) {
	if len(data) < 3 {
		return ChassisStatus{}, fmt.Errorf("ipmi: chassis status of %d bytes: %w", len(data), ErrShort)
	}
	b := data[0]
	return ChassisStatus{
		PowerOn:       b&0x01 != 0,
		PowerOverload: b&0x02 != 0,
		Interlock:     b&0x04 != 0,
		PowerFault:    b&0x08 != 0,
		ControlFault:  b&0x10 != 0,
		RestorePolicy: (b >> 5) & 0x03,
		LastEvent:     data[1],
		Misc:          data[2],
	}, nil
}

// ChassisControl is the argument of the Chassis Control command.
type ChassisControl uint8

// Chassis Control actions.
const (
	PowerDown      ChassisControl = 0
	PowerUp        ChassisControl = 1
	PowerCycle     ChassisControl = 2
	HardReset      ChassisControl = 3
	PulseDiag      ChassisControl = 4
	SoftShutdown   ChassisControl = 5
	maxChassisCtrl                = SoftShutdown
)

func (c ChassisControl) String() string {
	switch c {
	case PowerDown:
		return "power down"
	case PowerUp:
		return "power up"
	case PowerCycle:
		return "power cycle"
	case HardReset:
		return "hard reset"
	case PulseDiag:
		return "diagnostic interrupt"
	case SoftShutdown:
		return "soft shutdown"
	}
	return fmt.Sprintf("chassis control %d", uint8(c))
}

// Valid reports whether c is a defined action.
func (c ChassisControl) Valid() bool { return c <= maxChassisCtrl }

// BootDevice is the boot device selector of the boot flags (bits 5:2 of data 2).
type BootDevice uint8

// Boot device selectors.
const (
	BootNone         BootDevice = 0x0
	BootPXE          BootDevice = 0x1
	BootDisk         BootDevice = 0x2
	BootDiskSafe     BootDevice = 0x3
	BootDiag         BootDevice = 0x4
	BootCD           BootDevice = 0x5
	BootSetup        BootDevice = 0x6
	BootRemoteFloppy BootDevice = 0x7
	BootRemoteCD     BootDevice = 0x8
	BootRemoteMedia  BootDevice = 0x9
	BootRemoteDisk   BootDevice = 0xB
	BootFloppy       BootDevice = 0xF
)

func (d BootDevice) String() string {
	switch d {
	case BootNone:
		return "none"
	case BootPXE:
		return "pxe"
	case BootDisk:
		return "disk"
	case BootDiskSafe:
		return "safe"
	case BootDiag:
		return "diag"
	case BootCD:
		return "cdrom"
	case BootSetup:
		return "bios"
	case BootFloppy:
		return "floppy"
	}
	return fmt.Sprintf("boot device 0x%X", uint8(d))
}

// Boot option parameters (Set/Get System Boot Options).
const (
	BootParamSetInProgress  = 0
	BootParamFlagValidClear = 3
	BootParamInfoAck        = 4
	BootParamFlags          = 5

	// DontClearOnTimeout in parameter 3 keeps the BMC from clearing the boot flags 60 s
	// after they are set when no chassis command follows (what xCAT's rsetboot sets).
	DontClearOnTimeout = 0x08
)

// BootFlags is boot option parameter 5.
type BootFlags struct {
	Valid      bool
	Persistent bool
	EFI        bool
	Device     BootDevice
}

// Append appends the 5 data bytes of the parameter to dst.
func (f BootFlags) Append(dst []byte) []byte {
	var b0 byte
	if f.Valid {
		b0 |= 0x80
	}
	if f.Persistent {
		b0 |= 0x40
	}
	if f.EFI {
		b0 |= 0x20
	}
	return append(dst, b0, byte(f.Device&0x0F)<<2, 0, 0, 0)
}

// ParseBootFlags parses the data of a Get System Boot Options response for parameter 5:
// parameter version, parameter selector, then the 5 data bytes.
func ParseBootFlags(data []byte) (BootFlags, error) {
	if len(data) < 4 {
		return BootFlags{}, fmt.Errorf("ipmi: boot options of %d bytes: %w", len(data), ErrShort)
	}
	if sel := data[1] & 0x7F; sel != BootParamFlags {
		return BootFlags{}, fmt.Errorf("ipmi: boot options answer is for parameter %d, not %d", sel, BootParamFlags)
	}
	d := data[2:]
	return BootFlags{
		Valid:      d[0]&0x80 != 0,
		Persistent: d[0]&0x40 != 0,
		EFI:        d[0]&0x20 != 0,
		Device:     BootDevice(d[1]>>2) & 0x0F,
	}, nil
}
