// Package confirm asks an operator before a command sends many campaign
// messages at once: `tideline backfill apply` and `tideline audiences
// apply` share it, so both ask the same question, skip it the same way
// (--yes) and refuse the same way off a terminal.
package confirm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotConfirmed refuses an action that would send more than its
// threshold without confirmation.
var ErrNotConfirmed = errors.New("not confirmed")

// Gate decides whether an action sending n messages may go ahead.
type Gate struct {
	// Above is the number of sends above which the operator is asked, and
	// Setting the setting holding it, named in the question.
	Above   int
	Setting string
	// Yes confirms in advance (--yes).
	Yes bool
	// Ask puts a yes/no question to the operator; nil when there is no
	// terminal to ask on, which refuses instead.
	Ask func(question string) bool
}

// Check returns nil when action (say "this apply") may send about n
// messages: n is at most Above, Yes is set, or the operator agreed.
func (g Gate) Check(n int64, action string) error {
	if n <= int64(g.Above) || g.Yes {
		return nil
	}
	if g.Ask == nil {
		return fmt.Errorf("%w: %s would send about %d campaign messages, more than %s (%d); check what it does and rerun with --yes", ErrNotConfirmed, action, n, g.Setting, g.Above)
	}
	q := fmt.Sprintf("%s would send about %d campaign messages (more than %s = %d). Continue?", capitalize(action), n, g.Setting, g.Above)
	if !g.Ask(q) {
		return fmt.Errorf("%w: the operator declined", ErrNotConfirmed)
	}
	return nil
}

// Terminal asks q on out and reads the answer from in: only "y" or "yes"
// agree.
func Terminal(in io.Reader, out io.Writer, q string) bool {
	fmt.Fprintf(out, "%s [y/N] ", q)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
