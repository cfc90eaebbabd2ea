package query

import "errors"

// Sentinel errors of the query model; Request.Validate wraps them with what
// to change.
var (
	// ErrUnknownType is a query type the backend does not serve.
	ErrUnknownType = errors.New("unknown query type")
	// ErrTimeRange is an empty or inverted time range.
	ErrTimeRange = errors.New("invalid time range")
	// ErrFilter is an audience, campaign or lane filter value that cannot be used.
	ErrFilter = errors.New("invalid filter")
	// ErrUnknownMetric is an alert_metric query's metric the backend does
	// not serve.
	ErrUnknownMetric = errors.New("unknown metric")
)
