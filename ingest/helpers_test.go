package ingest_test

import (
	"context"
	"testing"

	"github.com/tideline-dev/tideline/ingest"
)

// runLoader starts l; the function it returns stops it and fails the test
// when Run returned an error.
func runLoader(t *testing.T, l *ingest.Loader) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("loader: %v", err)
		}
	}
}
