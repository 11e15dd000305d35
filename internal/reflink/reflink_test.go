package reflink

import (
	"slices"
	"testing"
)

// Changed on hand-made maps: what counts as the same mapping.
func TestChangedMaps(t *testing.T) {
	const bs = 100
	plain := func(l, p, n int64) Extent { return Extent{Logical: l, Physical: p, Length: n} }
	for _, c := range []struct {
		name             string
		was, now         []Extent
		wasSize, nowSize int64
		want             []bool
	}{
		{"identical", []Extent{plain(0, 1000, 300)}, []Extent{plain(0, 1000, 300)}, 300, 300,
			[]bool{false, false, false}},
		{"one block moved", []Extent{plain(0, 1000, 300)},
			[]Extent{plain(0, 1000, 100), plain(100, 5000, 100), plain(200, 1200, 100)}, 300, 300,
			[]bool{false, true, false}},
		{"same blocks reported in other cuts", []Extent{plain(0, 1000, 150), plain(150, 1150, 150)},
			[]Extent{plain(0, 1000, 300)}, 300, 300, []bool{false, false, false}},
		{"part of a block moved", []Extent{plain(0, 1000, 300)},
			[]Extent{plain(0, 1000, 150), plain(150, 7000, 10), plain(160, 1160, 140)}, 300, 300,
			[]bool{false, true, false}},
		{"holes alike and not", []Extent{plain(0, 1000, 100), plain(200, 1200, 100)},
			[]Extent{plain(0, 1000, 100), plain(100, 3000, 50), plain(200, 1200, 100)}, 300, 300,
			[]bool{false, true, false}},
		{"a hole punched", []Extent{plain(0, 1000, 300)}, []Extent{plain(0, 1000, 100), plain(200, 1200, 100)},
			300, 300, []bool{false, true, false}},
		{"grown", []Extent{plain(0, 1000, 200)}, []Extent{plain(0, 1000, 300)}, 200, 300,
			[]bool{false, false, true}},
		{"last block lengthened", []Extent{plain(0, 1000, 250)}, []Extent{plain(0, 1000, 300)}, 250, 300,
			[]bool{false, false, true}},
		{"shrunk", []Extent{plain(0, 1000, 300)}, []Extent{plain(0, 1000, 250)}, 300, 250,
			[]bool{false, false, true}},
		{"delayed allocation is never the same", []Extent{{0, 0, 300, flagDelalloc}},
			[]Extent{{0, 0, 300, flagDelalloc}}, 300, 300, []bool{true, true, true}},
		{"unwritten is not written", []Extent{plain(0, 1000, 300)},
			[]Extent{{0, 1000, 100, 0}, {100, 1100, 100, flagUnwritten}, {200, 1200, 100, 0}}, 300, 300,
			[]bool{false, true, false}},
		{"encoded extent kept", []Extent{{0, 1000, 300, flagEncoded}}, []Extent{{0, 1000, 300, flagEncoded}},
			300, 300, []bool{false, false, false}},
		{"encoded extent cut", []Extent{{0, 1000, 300, flagEncoded}},
			[]Extent{{0, 1000, 100, flagEncoded}, {100, 9000, 100, flagEncoded}, {200, 1000, 100, flagEncoded}},
			300, 300, []bool{true, true, true}},
	} {
		got := Changed(c.was, c.now, c.wasSize, c.nowSize, bs)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: changed %v, want %v", c.name, got, c.want)
		}
	}
}
