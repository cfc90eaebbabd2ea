package definition

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "0", want: 0},
		{in: "15m", want: 15 * time.Minute},
		{in: " 30d ", want: 30 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "2w", want: 14 * 24 * time.Hour},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "", err: "empty duration"},
		{in: "30", err: `"30" is not a duration: 30 has no unit`},
		{in: "7days", err: `unknown unit "days"`},
		{in: "15 minutes", err: `unknown unit " minutes"`},
		{in: "soon", err: `expected a number at "soon"`},
		{in: "1..5h", err: `"1..5" is not a number`},
		{in: "99999999999w", err: "too large"},
		{in: "3y", err: `unknown unit "y"`},
		{in: "-1h", err: `expected a number at "-1h"`},
		{in: "1h-", err: `unknown unit "h-"`},
		{in: "m", err: `expected a number at "m"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				if !strings.Contains(err.Error(), "e.g. 15m") && !strings.Contains(err.Error(), "too large") {
					t.Errorf("error %q does not say what to write", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, err := ParseDuration(FormatDuration(got)); err != nil || back != got {
				t.Errorf("FormatDuration(%v) = %q parses back to %v, %v", got, FormatDuration(got), back, err)
			}
		})
	}
}

func TestErrorPosition(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Column: 7, Field: "when.within", Msg: "bad"}, "a.yaml:3:7: when.within: bad"},
		{Error{File: "a.yaml", Line: 3, Msg: "bad"}, "a.yaml:3: bad"},
		{Error{File: "a.yaml", Field: "id", Msg: "bad"}, "a.yaml: id: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestFormatUnit(t *testing.T) {
	for d, want := range map[time.Duration]string{
		14 * 24 * time.Hour: "14d", 36 * time.Hour: "36h", 90 * time.Minute: "90m", 61 * time.Second: "61s", 1500 * time.Millisecond: "1500ms",
	} {
		if got := FormatUnit(d); got != want {
			t.Errorf("FormatUnit(%v) = %s, want %s", d, got, want)
		}
	}
}
