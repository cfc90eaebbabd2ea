package query

import (
	"errors"
	"fmt"
	"testing"
)

func TestLivePath(t *testing.T) {
	cases := []struct {
		audiences []string
		want      string
		err       bool
	}{
		{nil, "live/all", false},
		{[]string{"gold"}, "live/gold", false},
		{[]string{"silver", "gold"}, "live/gold/silver", false},
		{[]string{"has space"}, "", true},
		{[]string{"a/b"}, "", true},
		{[]string{"all"}, "", true},
	}
	for _, c := range cases {
		got, err := LivePath(c.audiences)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("LivePath(%q) = %q, %v", c.audiences, got, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrFilter) {
				t.Errorf("error %v is not ErrFilter", err)
			}
			continue
		}
		back, err := ParseLivePath(got)
		if err != nil {
			t.Errorf("ParseLivePath(%q): %v", got, err)
		}
		if len(c.audiences) > 0 && fmt.Sprint(back) != fmt.Sprint(sortedCopy(c.audiences)) {
			t.Errorf("round trip %q -> %q -> %q", c.audiences, got, back)
		}
	}
	for _, bad := range []string{"", "live", "other/gold", "live/", "live/gold//x", "live/all/gold"} {
		if _, err := ParseLivePath(bad); err == nil {
			t.Errorf("ParseLivePath(%q) accepted", bad)
		}
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
