package backfill

import (
	"errors"
	"reflect"
	"testing"
)

func TestEndState(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name                string
		err                 error
		interrupted         bool
		state, phase, error string
	}{
		{name: "success", state: StateCompleted, phase: PhaseDone},
		{name: "failure keeps its phase", err: boom, state: StateFailed, error: "boom"},
		{name: "cancelled", err: boom, interrupted: true, state: StateInterrupted, error: "interrupted: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, phase, msg := endState(tt.err, tt.interrupted)
			if state != tt.state || phase != tt.phase || msg != tt.error {
				t.Errorf("endState = %q, %q, %q; want %q, %q, %q", state, phase, msg, tt.state, tt.phase, tt.error)
			}
		})
	}
}

func TestResumeRanges(t *testing.T) {
	reingest := map[string]map[int32]Ranges{
		"events.web": {0: {{From: 10, To: 20}, {From: 30, To: 40}}, 1: {{From: 0, To: 5}}},
		"events.ios": {0: {{From: 100, To: 110}}},
	}
	cp := &checkpoints{m: map[cpKey]*cpVal{
		{"events.web", 0}: {next: 15},  // stopped inside the first range
		{"events.web", 1}: {next: 5},   // partition done
		{"events.ios", 0}: {next: 300}, // past everything
	}}
	tests := []struct {
		name string
		cp   *checkpoints
		want map[string]map[int32]Ranges
	}{
		{name: "fresh start wants everything", cp: &checkpoints{m: map[cpKey]*cpVal{}}, want: reingest},
		{name: "resume from the checkpoints", cp: cp, want: map[string]map[int32]Ranges{
			"events.web": {0: {{From: 15, To: 20}, {From: 30, To: 40}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resumeRanges(reingest, tt.cp); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("resumeRanges = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSplitUnledgered(t *testing.T) {
	all := []Qualification{
		{CustomerID: "a", Owner: OwnerPoller},
		{CustomerID: "b", Decision: "wait"},
		{CustomerID: "c", Decision: "fire"},
		{CustomerID: "d", Owner: OwnerPoller, Decision: "wait"},
		{CustomerID: "e", Decision: "skip"},
	}
	pending, poller, waiting := splitUnledgered(all)
	if poller != 2 || waiting != 1 || !reflect.DeepEqual(pending, []Qualification{all[2], all[4]}) {
		t.Errorf("splitUnledgered = %v, %d, %d; want c and e pending, 2 left to the poller, 1 waiting", pending, poller, waiting)
	}
}
