package provkit_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/provkit/provkit"

// allowed is the import table of shared/ARCHITECTURE.md: which provkit packages each
// top-level package may import (directly or not). examples/ and bench/ (binaries and
// benchmark drivers) may import everything; internal/ packages are test and build helpers
// and are checked separately.
var allowed = map[string][]string{
	"cluster": {},
	"dhcp":    {},
	"tftp":    {},
	"nfsroot": {"cdsl"},
	"image":   {},
	"cdsl":    {},
	"ha":      {},
	"bmc":     {},
	// dns has no row in ARCHITECTURE.md: it follows the rule of the service packages.
	"dns": {},
}

// TestImportTable asserts the layout drawn in ARCHITECTURE.md: service packages never
// import cluster, no top-level package imports another except as the table allows, and
// nothing imports examples/.
func TestImportTable(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f",
		`{{.ImportPath}} {{join .Deps " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		top, _, _ := strings.Cut(pkg, "/")
		seen[top] = true
		for _, dep := range fields[1:] {
			if !strings.HasPrefix(dep, module+"/") {
				continue
			}
			d := strings.TrimPrefix(dep, module+"/")
			dtop, _, _ := strings.Cut(d, "/")
			switch {
			case top == "examples" && strings.HasPrefix(d, "examples/internal/"):
				// The glue shared by provd and provctl.
			case dtop == "examples" || dtop == "bench":
				t.Errorf("%s imports %s: nothing may import examples/ or bench/", pkg, d)
			case top == "examples" || top == "bench" || top == dtop:
			case top == "internal":
				if _, ok := allowed[dtop]; ok {
					t.Errorf("%s imports %s: internal helpers must not import top-level packages", pkg, d)
				}
			case dtop == "internal":
				// Non-test code of a top-level package may use internal helpers only if
				// they carry no provkit dependency themselves (checked above).
			default:
				may, ok := allowed[top]
				if !ok {
					t.Errorf("package %s is not in the import table of ARCHITECTURE.md", pkg)
					continue
				}
				if !slices.Contains(may, dtop) {
					t.Errorf("%s imports %s: ARCHITECTURE.md allows only %v", pkg, d, may)
				}
			}
		}
	}
	for top := range allowed {
		if !seen[top] {
			t.Errorf("package %s of ARCHITECTURE.md does not exist", top)
		}
	}
}
