package materialize

import (
	"fmt"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/definition"
)

// parseWindow reads a window such as "7d", "36h", "1d12h" or "90m", in the
// duration grammar of every definition file (definition.ParseDuration).
// Windows are whole seconds, at least one second and at most ten years.
func parseWindow(s string) (time.Duration, error) {
	d, err := definition.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	in := strings.TrimSpace(s)
	switch {
	case d > maxWindow:
		return 0, fmt.Errorf("window %q is longer than ten years", in)
	case d < time.Second:
		return 0, fmt.Errorf("window %q is empty: it must be at least 1s", in)
	case d%time.Second != 0:
		return 0, fmt.Errorf("window %q is not a whole number of seconds", in)
	}
	return d, nil
}

// FormatWindow writes d in its largest whole unit ("7d", "36h"), the form
// generated names and explanations use; 0 is "ever".
func FormatWindow(d time.Duration) string {
	if d == 0 {
		return "ever"
	}
	return definition.FormatUnit(d)
}
