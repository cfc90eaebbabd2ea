package trigger

import (
	"errors"
	"fmt"
	"time"

	"github.com/tideline-dev/tideline/definition"
)

// Sentinel errors of the trigger package.
var (
	// ErrNoCampaigns means a campaigns folder holds no definition.
	ErrNoCampaigns = errors.New("no campaign definitions found")
	// ErrUnknownCampaign means an id names no loaded campaign.
	ErrUnknownCampaign = errors.New("unknown campaign")
	// ErrSecretMissing means a campaign's signing secret is not in the environment.
	ErrSecretMissing = errors.New("webhook secret not set")
	// ErrDestinationDisabled means a destination answered 410 Gone earlier
	// and is disabled until an operator re-enables it.
	ErrDestinationDisabled = errors.New("destination disabled")
	// ErrClosed means the dispatcher was stopped.
	ErrClosed = errors.New("dispatcher closed")
)

// DefinitionError is a problem in a campaign or policy definition,
// located in its file; audiences report theirs with the same type.
type DefinitionError = definition.Error

// deliveryError is one failed delivery attempt. Retryable says whether
// another attempt may succeed; every failure is retryable except a 410,
// which disables the destination.
type deliveryError struct {
	Status     int
	Retryable  bool
	RetryAfter time.Duration
	Err        error
}

func (e *deliveryError) Error() string {
	if e.Status > 0 {
		if e.Err != nil {
			return fmt.Sprintf("HTTP %d: %v", e.Status, e.Err)
		}
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return e.Err.Error()
}

func (e *deliveryError) Unwrap() error { return e.Err }
