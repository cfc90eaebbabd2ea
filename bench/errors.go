package bench

import "errors"

var (
	// ErrNoPeer means ClickHouse refused the Kafka table engine; the peer
	// figures are missing and the error says why.
	ErrNoPeer = errors.New("kafka table engine unavailable")
	// ErrChildFailed means a loader or collector child process exited early.
	ErrChildFailed = errors.New("child process failed")
	// ErrNotDrained means a scenario's deadline passed before every row it
	// waited for became visible.
	ErrNotDrained = errors.New("not drained before the deadline")
)
