package confirm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int64
		yes    bool
		answer string // "" means no terminal
		ok     bool
	}{
		{"at the threshold", 10, false, "", true},
		{"above, no terminal", 11, false, "", false},
		{"above, --yes", 11, true, "", true},
		{"above, the operator says yes", 11, false, "yes\n", true},
		{"above, the operator says y", 11, false, "Y\n", true},
		{"above, the operator says no", 11, false, "no\n", false},
		{"above, the operator just presses enter", 11, false, "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked bytes.Buffer
			g := Gate{Above: 10, Setting: "x.confirm_above", Yes: tc.yes}
			if tc.answer != "" {
				g.Ask = func(q string) bool { return Terminal(strings.NewReader(tc.answer), &asked, q) }
			}
			err := g.Check(tc.n, "this apply")
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrNotConfirmed)) {
				t.Fatalf("Check: %v, want ok=%v", err, tc.ok)
			}
			if tc.answer != "" && !strings.Contains(asked.String(), "This apply would send about 11 campaign messages (more than x.confirm_above = 10). Continue? [y/N]") {
				t.Errorf("question asked: %q", asked.String())
			}
			if tc.answer == "" && !tc.ok && !strings.Contains(err.Error(), "rerun with --yes") {
				t.Errorf("refusal off a terminal does not say what to do: %v", err)
			}
		})
	}
}
