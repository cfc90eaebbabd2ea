package backfill

import (
	"errors"

	"github.com/tideline-dev/tideline/internal/confirm"
)

// Sentinel errors; callers test them with errors.Is.
var (
	// ErrOverlap refuses an apply whose window overlaps an apply still running.
	ErrOverlap = errors.New("another apply is running on an overlapping window")
	// ErrNotConfirmed refuses an apply that would send more than
	// backfill.confirm_above campaigns without confirmation.
	ErrNotConfirmed = confirm.ErrNotConfirmed
	// ErrWrongTarget refuses a plan made for another database or topic prefix.
	ErrWrongTarget = errors.New("plan was made for another deployment")
	// ErrPlanFormat is a plan file that cannot be read.
	ErrPlanFormat = errors.New("not a backfill plan")
	// ErrNotLoaded means re-ingested records did not reach ClickHouse.
	ErrNotLoaded = errors.New("re-ingested records were not loaded")
	// ErrUnavailable means records of the plan are neither in Kafka nor in
	// the archive given.
	ErrUnavailable = errors.New("records are no longer available")
)
