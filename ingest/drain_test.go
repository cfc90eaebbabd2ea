package ingest

import (
	"context"
	"testing"
	"time"
)

// TestDrainContext: a stop does not cut a flush short at once, only after
// the grace; a flush that ends first releases its context.
func TestDrainContext(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	dctx, done := drainContext(ctx, time.Hour)
	stop()
	time.Sleep(50 * time.Millisecond)
	if dctx.Err() != nil {
		t.Fatal("the flush context ended with the stop, before the grace")
	}
	done()
	if dctx.Err() == nil {
		t.Fatal("the flush context outlived its flush")
	}

	ctx, stop = context.WithCancel(context.Background())
	dctx, done = drainContext(ctx, 10*time.Millisecond)
	defer done()
	stop()
	select {
	case <-dctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the flush context outlived the grace after a stop")
	}

	dctx, done = drainContext(context.Background(), time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if dctx.Err() != nil {
		t.Fatal("the flush context ended without a stop")
	}
	done()
}
