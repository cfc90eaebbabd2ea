package backfill

import (
	"fmt"
	"sort"
	"strings"
)

// Range is the half-open offset range [From, To) of one partition.
type Range struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// Len is the number of offsets in r.
func (r Range) Len() int64 {
	if r.To <= r.From {
		return 0
	}
	return r.To - r.From
}

// Contains reports whether off is in r.
func (r Range) Contains(off int64) bool { return off >= r.From && off < r.To }

func (r Range) String() string {
	if r.Len() == 1 {
		return fmt.Sprint(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To-1)
}

// Ranges is a sorted list of disjoint, non-adjacent ranges.
type Ranges []Range

// Len is the number of offsets in rs.
func (rs Ranges) Len() int64 {
	var n int64
	for _, r := range rs {
		n += r.Len()
	}
	return n
}

// Contains reports whether off is in one of rs.
func (rs Ranges) Contains(off int64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].To > off })
	return i < len(rs) && rs[i].Contains(off)
}

// String lists the ranges as "a-b, c, d-e", eliding the middle of long lists.
func (rs Ranges) String() string {
	const show = 8
	parts := make([]string, 0, min(len(rs), show+1))
	for i, r := range rs {
		if len(rs) > show && i == show/2 {
			parts = append(parts, fmt.Sprintf("… %d more …", len(rs)-show))
		}
		if len(rs) > show && i >= show/2 && i < len(rs)-show/2 {
			continue
		}
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}

// normalize sorts rs and merges overlapping and adjacent ranges.
func normalize(rs []Range) Ranges {
	out := make(Ranges, 0, len(rs))
	for _, r := range rs {
		if r.Len() > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.From <= merged[n-1].To {
			merged[n-1].To = max(merged[n-1].To, r.To)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// RangesOf compresses offsets (in any order, duplicates allowed) into ranges.
func RangesOf(offsets []int64) Ranges {
	sorted := append([]int64(nil), offsets...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var out Ranges
	for _, off := range sorted {
		if n := len(out); n > 0 && off <= out[n-1].To {
			if off == out[n-1].To {
				out[n-1].To++
			}
			continue
		}
		out = append(out, Range{From: off, To: off + 1})
	}
	return out
}

// gapsIn returns the offsets of w not in present, which must be sorted
// ascending (duplicates allowed; offsets outside w are ignored).
func gapsIn(w Range, present []int64) Ranges {
	var out Ranges
	next := w.From
	for _, off := range present {
		if off < next {
			continue
		}
		if off >= w.To {
			break
		}
		if off > next {
			out = append(out, Range{From: next, To: off})
		}
		next = off + 1
	}
	if next < w.To {
		out = append(out, Range{From: next, To: w.To})
	}
	return out
}

// intersect returns the offsets in both a and b.
func intersect(a, b Ranges) Ranges {
	var out Ranges
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		lo, hi := max(a[i].From, b[j].From), min(a[i].To, b[j].To)
		if lo < hi {
			out = append(out, Range{From: lo, To: hi})
		}
		if a[i].To < b[j].To {
			i++
		} else {
			j++
		}
	}
	return normalize(out)
}

// Clip returns the offsets of rs in [from, to).
func (rs Ranges) Clip(from, to int64) Ranges {
	return intersect(rs, Ranges{{From: from, To: to}})
}

// Minus returns the offsets of rs not in o.
func (rs Ranges) Minus(o Ranges) Ranges {
	var out Ranges
	j := 0
	for _, r := range rs {
		from := r.From
		for j < len(o) && o[j].To <= from {
			j++
		}
		for k := j; k < len(o) && o[k].From < r.To; k++ {
			if o[k].From > from {
				out = append(out, Range{From: from, To: o[k].From})
			}
			from = max(from, o[k].To)
		}
		if from < r.To {
			out = append(out, Range{From: from, To: r.To})
		}
	}
	return normalize(out)
}
