package backfill

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2025, 12, 14, 22, 12, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-12-14T18:58:00Z":      time.Date(2025, 12, 14, 18, 58, 0, 0, time.UTC),
		"2025-12-14T19:58:00+01:00": time.Date(2025, 12, 14, 18, 58, 0, 0, time.UTC),
		"2025-12-14 18:58":          time.Date(2025, 12, 14, 18, 58, 0, 0, time.UTC),
		"2025-12-14 18:58:05":       time.Date(2025, 12, 14, 18, 58, 5, 0, time.UTC),
		"2025-12-14":                time.Date(2025, 12, 14, 0, 0, 0, 0, time.UTC),
		"1765738680000":             time.Date(2025, 12, 14, 18, 58, 0, 0, time.UTC),
		"now":                       now,
		"-6h":                       now.Add(-6 * time.Hour),
		"-90m":                      now.Add(-90 * time.Minute),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "12", "-6", "2025-13-01"} {
		if _, err := ParseTime(bad, now); err == nil {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestWindow(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2025, 12, 14, h, 0, 0, 0, time.UTC) }
	w := Window{From: at(18), To: at(22)}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if (Window{From: at(22), To: at(18)}).Validate() == nil || (Window{To: at(1)}).Validate() == nil {
		t.Fatal("empty windows accepted")
	}
	for _, tc := range []struct {
		o    Window
		want bool
	}{
		{Window{at(17), at(18)}, false},
		{Window{at(17), at(19)}, true},
		{Window{at(19), at(20)}, true},
		{Window{at(22), at(23)}, false},
	} {
		if got := w.Overlaps(tc.o); got != tc.want {
			t.Errorf("%v overlaps %v = %v", w, tc.o, got)
		}
	}
}
