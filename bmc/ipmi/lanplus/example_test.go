package lanplus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/provkit/provkit/bmc/bmctest"
	"github.com/provkit/provkit/bmc/ipmi"
	"github.com/provkit/provkit/bmc/ipmi/lanplus"
)

func ExampleOpen() {
	f, _ := bmctest.NewFakeBMC("admin", "pw") // stands in for a real BMC
	defer f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := lanplus.Open(ctx, lanplus.Config{Addr: f.Addr(), User: "admin", Password: "pw"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)
	if err := s.ChassisControl(ctx, ipmi.PowerUp); err != nil {
		fmt.Println(err)
		return
	}
	st, _ := s.ChassisStatus(ctx)
	fmt.Println("power on:", st.PowerOn)
	// Output: power on: true
}
