package image_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/provkit/provkit/image"
)

// Pack a tree as a deterministic gzip-compressed cpio archive and list it back.
func ExamplePack() {
	root, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755) // MkdirTemp makes it 0700
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("node\n"), 0o644)
	os.Symlink("hostname", filepath.Join(root, "etc/name"))

	var archive bytes.Buffer
	st, err := image.Pack(context.Background(), root, &archive, image.PackOptions{
		Format: image.CPIO, Compression: image.Gzip, Deterministic: true, MTime: time.Unix(1700000000, 0),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("entries:", st.Entries, "data bytes:", st.Bytes)

	dr, comp, _ := image.Decompress(&archive)
	fmt.Println("compression:", comp)
	r := image.NewCPIOReader(dr)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s %o %d\n", h.Name, h.Mode, h.MTime)
	}
	// Output:
	// entries: 4 data bytes: 5
	// compression: gzip
	// . 40755 1700000000
	// etc 40755 1700000000
	// etc/hostname 100644 1700000000
	// etc/name 120777 1700000000
}

// Unpack a packed image into a directory; the format and compression are detected.
func ExampleUnpack() {
	src, _ := os.MkdirTemp("", "example-src")
	dst, _ := os.MkdirTemp("", "example-dst")
	defer os.RemoveAll(src)
	defer os.RemoveAll(dst)
	os.WriteFile(filepath.Join(src, "motd"), []byte("hello\n"), 0o644)

	var archive bytes.Buffer
	image.Pack(context.Background(), src, &archive, image.PackOptions{Format: image.Tar, Compression: image.Zstd})
	st, err := image.Unpack(context.Background(), &archive, dst, image.UnpackOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(filepath.Join(dst, "motd"))
	fmt.Println(st.Format, st.Compression, st.Entries, strings.TrimSpace(string(b)))
	// Output:
	// tar zstd 2 hello
}

// Read the Debian mirror the way Debootstrap does when Mirror is empty.
func ExampleParseAptSources() {
	sources := `Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
`
	ss, _ := image.ParseAptSources(strings.NewReader(sources), true)
	for _, s := range ss {
		fmt.Println(s.URI, s.Suites, s.Components)
	}
	// Output:
	// http://deb.debian.org/debian [bookworm bookworm-updates] [main]
}

func ExampleDetectFormat() {
	fmt.Println(image.DetectCompression([]byte{0x28, 0xb5, 0x2f, 0xfd}))
	fmt.Println(image.DetectFormat([]byte("070701000000020000")))
	fmt.Println(image.DetectFormat([]byte("hsqs")))
	// Output:
	// zstd
	// cpio
	// squashfs
}

// The sfdisk script a deploy feeds to a target disk twice the golden one's size: the
// layout is kept, the last partition grows, and a smaller disk is refused.
func ExampleLayoutDisk_SfdiskScript() {
	d := image.LayoutDisk{Device: "/dev/vda", Size: 8 << 30, SectorSize: 512, Label: "gpt",
		Partitions: []image.LayoutPartition{
			{Number: 1, Start: 2048, Size: 1048576, Type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", Name: "EFI", FSType: "vfat", Mountpoint: "/boot/efi"},
			{Number: 2, Start: 1050624, Size: 15726592, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", Grow: true, FSType: "ext4", Mountpoint: "/"},
		}}
	script, _ := d.SfdiskScript("/dev/nvme0n1", 16<<30, 512)
	fmt.Print(script)
	_, err := d.SfdiskScript("/dev/sdb", 4<<30, 512)
	fmt.Println(errors.Is(err, image.ErrDiskTooSmall))
	// Output:
	// label: gpt
	// unit: sectors
	//
	// /dev/nvme0n1p1 : start=2048, size=1048576, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"
	// /dev/nvme0n1p2 : start=1050624, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
	// true
}
