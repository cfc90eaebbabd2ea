package trigger

import "github.com/tideline-dev/tideline/trigger/webhooktest"

// NewReceiver returns a local webhook receiver accepting the given whsec_
// secrets: `tideline dev` runs one and prints its counts. It verifies
// signatures with its own code (package webhooktest), not this package's.
func NewReceiver(secrets ...string) (*webhooktest.Receiver, error) {
	return webhooktest.NewReceiver(secrets...)
}
