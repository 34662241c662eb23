package bmctest_test

import (
	"fmt"

	"github.com/provkit/provkit/bmc/bmctest"
)

func ExampleFakeBMC() {
	f, err := bmctest.NewFakeBMC("admin", "pw")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	f.SetPowerOn(true)
	active, opened := f.Sessions()
	fmt.Println(f.PowerOn(), active, opened)
	// Output: true 0 0
}
