package trigger

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"time"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b)
	return b
}

// jitter returns d scaled by a random factor in [0.5, 1): "equal jitter",
// which keeps at least half of the backoff so retries never bunch up at 0
// and spreads the rest so many failing deliveries do not retry in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}
