package natural

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompare(t *testing.T) {
	got := []string{"cn10", "cn2", "rack1-n3", "cn", "cn02x", "rack1-n12", "b", "cn2a", "a10", "a9"}
	slices.SortStableFunc(got, Compare)
	want := []string{"a9", "a10", "b", "cn", "cn2", "cn2a", "cn02x", "cn10", "rack1-n3", "rack1-n12"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sorted (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		a, b string
		want int
	}{{"n7", "n007", 0}, {"n8", "n007", 1}, {"", "a", -1}, {"a1b", "a1a", 1}} {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
