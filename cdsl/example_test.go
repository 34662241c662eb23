package cdsl_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/provkit/provkit/cdsl"
)

func Example() {
	root, err := os.MkdirTemp("", "image")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	_ = os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("template\n"), 0o644)
	_ = os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)

	repo, err := cdsl.Create(root, "n1", "n2")
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()
	if err := repo.MakeHostDependent("/etc/hostname"); err != nil {
		log.Fatal(err)
	}
	if err := repo.MakeHostDependent("/var"); err != nil {
		log.Fatal(err)
	}
	if err := repo.MakeShared("/var/lib/dpkg"); err != nil {
		log.Fatal(err)
	}
	// Give n1 its own hostname.
	_ = os.WriteFile(filepath.Join(root, "cluster/cdsl/n1/etc/hostname"), []byte("n1\n"), 0o644)

	link, _ := os.Readlink(filepath.Join(root, "etc/hostname"))
	fmt.Println("etc/hostname ->", link)
	for _, e := range repo.List() {
		fmt.Println(e.Type, e.Path, e.Nodes)
	}
	for _, p := range []string{"/etc/hostname", "/var/lib/dpkg", "/var/log"} {
		where, _ := repo.Resolve("n1", p)
		fmt.Printf("n1 %s: %s\n", p, where)
	}
	plan, _ := repo.Mounts("n2")
	fmt.Printf("n2 boots with: mount --bind %s %s\n", plan[0].Source, plan[0].Target)
	problems, _ := repo.Check()
	fmt.Println("problems:", len(problems))
	// Output:
	// etc/hostname -> ../cdsl.local/etc/hostname
	// hostdependent etc/hostname [n1 n2]
	// hostdependent var [n1 n2]
	// shared var/lib/dpkg [n1 n2]
	// n1 /etc/hostname: cluster/cdsl/n1/etc/hostname
	// n1 /var/lib/dpkg: cluster/shared/var/lib/dpkg
	// n1 /var/log: cluster/cdsl/n1/var/log
	// n2 boots with: mount --bind /cluster/cdsl/n2 /cdsl.local
	// problems: 0
}

func ExampleCleanPath() {
	for _, p := range []string{"/etc/ssh/", "etc/../../shadow", "/"} {
		c, err := cdsl.CleanPath(p)
		fmt.Printf("%q %q %v\n", p, c, err)
	}
	// Output:
	// "/etc/ssh/" "etc/ssh" <nil>
	// "etc/../../shadow" "" path "etc/../../shadow": invalid path: contains ".."
	// "/" "" path "/": invalid path: it is the root
}
