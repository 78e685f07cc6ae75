package worker

import "testing"

func TestPullOrder(t *testing.T) {
	for n, want := range map[uint64][3]int{
		0: {0, 1, 2}, 1: {0, 1, 2}, 3: {0, 1, 2},
		4: {2, 1, 0}, // every fifth pull looks at low first
		5: {0, 1, 2}, 9: {2, 1, 0},
	} {
		if got := pullOrder(n); got != want {
			t.Errorf("pullOrder(%d) = %v, want %v", n, got, want)
		}
	}
}
