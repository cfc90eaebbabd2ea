package query

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// livePrefix starts the path of every live channel the plugin serves:
// ds/<uid>/live/all or ds/<uid>/live/<audience>[/<audience>...].
const livePrefix = "live"

// liveAll is the path segment of a stream of every audience.
const liveAll = "all"

// segmentRe is what Grafana Live allows in a channel path segment.
var segmentRe = regexp.MustCompile(`^[A-Za-z0-9_=\-.]+$`)

// LivePath is the channel path of a live panel over audiences (every
// audience when none). Ids go into the path sorted, so the panels that
// watch the same audiences share one stream.
func LivePath(audiences []string) (string, error) {
	if len(audiences) == 0 {
		return livePrefix + "/" + liveAll, nil
	}
	ids := append([]string(nil), audiences...)
	sort.Strings(ids)
	for _, id := range ids {
		if id == liveAll || !segmentRe.MatchString(id) {
			return "", fmt.Errorf("%w: audience %q cannot be streamed: a live channel takes ids of letters, digits, '_', '-', '=' and '.' (and not %q)", ErrFilter, id, liveAll)
		}
	}
	return livePrefix + "/" + strings.Join(ids, "/"), nil
}

// ParseLivePath returns the audiences of a channel path made by LivePath
// (nil for every audience).
func ParseLivePath(path string) ([]string, error) {
	parts := strings.Split(path, "/")
	if len(parts) < 2 || parts[0] != livePrefix {
		return nil, fmt.Errorf("%w: path %q is not a live path (want live/all or live/<audience>...)", ErrFilter, path)
	}
	if len(parts) == 2 && parts[1] == liveAll {
		return nil, nil
	}
	for _, id := range parts[1:] {
		if id == liveAll || !segmentRe.MatchString(id) {
			return nil, fmt.Errorf("%w: path %q: %q is not an audience id", ErrFilter, path, id)
		}
	}
	return parts[1:], nil
}
