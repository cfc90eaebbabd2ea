package backfill

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
)

func TestRangesOf(t *testing.T) {
	for _, tc := range []struct {
		in   []int64
		want Ranges
	}{
		{nil, nil},
		{[]int64{5}, Ranges{{5, 6}}},
		{[]int64{3, 1, 2, 2, 7, 9, 8, 11}, Ranges{{1, 4}, {7, 10}, {11, 12}}},
	} {
		if got := RangesOf(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("RangesOf(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	got := normalize([]Range{{10, 12}, {0, 3}, {3, 5}, {11, 15}, {20, 20}, {7, 8}})
	want := Ranges{{0, 5}, {7, 8}, {10, 15}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got.String() != "0-4, 7, 10-14" {
		t.Fatalf("String() = %q", got.String())
	}
}

// TestGapsOracle compares Gaps, intersect and Contains with a set of offsets.
func TestGapsOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 500; round++ {
		w := Range{From: int64(rng.IntN(50)), To: int64(50 + rng.IntN(200))}
		present := map[int64]bool{}
		var offs []int64
		for i := 0; i < rng.IntN(300); i++ {
			off := int64(rng.IntN(300))
			present[off] = true
			offs = append(offs, off)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		gaps := gapsIn(w, offs)
		for off := int64(0); off < 300; off++ {
			want := w.Contains(off) && !present[off]
			if gaps.Contains(off) != want {
				t.Fatalf("round %d: offset %d in gaps = %v, want %v (window %v, gaps %v)", round, off, !want, want, w, gaps)
			}
		}
		if !reflect.DeepEqual(normalize(gaps), gaps) && len(gaps) > 0 {
			t.Fatalf("gaps not normalized: %v", gaps)
		}
		other := RangesOf(offs)
		both := intersect(gaps, other)
		if both.Len() != 0 {
			t.Fatalf("gaps %v intersect present %v = %v", gaps, other, both)
		}
		clip := other.Clip(w.From, w.To)
		var n int64
		for off := range present {
			if w.Contains(off) {
				n++
			}
		}
		if clip.Len() != n || clip.Len()+gaps.Len() != w.Len() {
			t.Fatalf("clip %d + gaps %d != window %d (present in window %d)", clip.Len(), gaps.Len(), w.Len(), n)
		}
	}
}

func TestRangesStringElides(t *testing.T) {
	var rs Ranges
	for i := int64(0); i < 20; i++ {
		rs = append(rs, Range{From: i * 10, To: i*10 + 1})
	}
	if got, want := rs.String(), "0, 10, 20, 30, … 12 more …, 160, 170, 180, 190"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// An empty window has no partition in range; its filter must still be valid
// SQL inside the callers' "AND (...)" (it was "AND ()", a syntax error).
func TestPartitionFilterEmpty(t *testing.T) {
	f, args := partitionFilter(map[int32]Range{}, nil)
	if f != "0" || len(args) != 0 {
		t.Fatalf("partitionFilter(empty) = %q, %v; want \"0\" and no arguments", f, args)
	}
	f, args = partitionFilter(map[int32]Range{2: {From: 5, To: 9}}, nil)
	if f != "(kafka_partition = ? AND kafka_offset >= ? AND kafka_offset < ?)" || len(args) != 3 {
		t.Fatalf("partitionFilter(one) = %q, %v", f, args)
	}
}

// TestMinusOracle compares Minus with a set of offsets.
func TestMinusOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := func() (Ranges, map[int64]bool) {
		set := map[int64]bool{}
		var offs []int64
		for i := 0; i < rng.IntN(120); i++ {
			off := int64(rng.IntN(200))
			set[off] = true
			offs = append(offs, off)
		}
		return RangesOf(offs), set
	}
	for round := 0; round < 500; round++ {
		a, inA := random()
		b, inB := random()
		got := a.Minus(b)
		for off := int64(0); off < 200; off++ {
			if want := inA[off] && !inB[off]; got.Contains(off) != want {
				t.Fatalf("round %d: offset %d in %v minus %v = %v, want %v", round, off, a, b, !want, want)
			}
		}
		if len(got) > 0 && !reflect.DeepEqual(normalize(got), got) {
			t.Fatalf("not normalized: %v", got)
		}
	}
}
