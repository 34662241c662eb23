package glue_test

import (
	"fmt"

	"github.com/provkit/provkit/examples/internal/glue"
)

// The writable paths of a statelite image from its litefile entries: nfsroot keeps each
// node's copy of them.
func ExampleWritablePaths() {
	writable, ignored := glue.WritablePaths([]glue.LiteEntry{
		{File: "/var/", Options: "persistent"},
		{File: "/var/log/", Options: "tmpfs"},
		{File: "/etc/ntp.conf", Options: "ro"},
		{File: "/root/.ssh/"},
		{File: "/etc/adjtime", Options: "link,persistent"},
	})
	fmt.Println(writable)
	for _, why := range ignored {
		fmt.Println(why)
	}
	// Output:
	// [/etc/adjtime /root/.ssh /var]
	// litefile /etc/ntp.conf: option ro: not a writable path
	// litefile /var/log: below writable /var
}
