// Package natural orders names the way people number nodes and racks: runs of digits
// compare by value, so cn2 comes before cn10 and n007 ties with n7 until the rest decides.
package natural

import (
	"cmp"
	"strings"
)

// Compare returns -1, 0 or +1 as a sorts before, with or after b, comparing runs of
// decimal digits by value (leading zeros ignored) and everything else byte by byte.
func Compare(a, b string) int {
	for a != "" && b != "" {
		da, db := leadingDigits(a), leadingDigits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func leadingDigits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
