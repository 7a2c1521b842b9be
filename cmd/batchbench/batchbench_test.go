package main

import (
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the tests if a goroutine outlives them: every run must
// stop everything it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestScenarios runs every scenario briefly in both modes: each must end
// by itself, measure something and see nothing wrong.
func TestScenarios(t *testing.T) {
	for _, sc := range allScenarios {
		for _, m := range modes {
			t.Run(sc.name+"/"+string(m), func(t *testing.T) {
				size := max(sc.fixedSize, 200)
				s := sc.run(m, size, 50*time.Millisecond)
				if len(s.problems) > 0 {
					t.Fatalf("problems: %q", s.problems)
				}
				if s.count == 0 || s.rate() <= 0 {
					t.Fatalf("measured nothing: %+v", s)
				}
				if (m == modeBatch) != (s.stats != nil) {
					t.Errorf("stats = %v in mode %s", s.stats, m)
				}
			})
		}
	}
}

func TestOrder(t *testing.T) {
	p := make([]byte, 16)
	var o order
	for _, seq := range []uint64{0, 1, 5, 1<<streamShift | 0, 6, 4, 1<<streamShift | 0} {
		stamp(p, seq)
		o.see(p, len(p))
	}
	o.see(p[:8], len(p))
	stamp(p, 7)
	p[15]++
	o.see(p, len(p))
	if o.backwards != 2 || o.resize != 1 || o.corrupt != 1 {
		t.Errorf("backwards, resize, corrupt = %d, %d, %d; want 2, 1, 1", o.backwards, o.resize, o.corrupt)
	}
}

func TestStats(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4 = %v", got)
	}
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Microsecond
	}
	if p50, p99 := percentile(ds, 0.5), percentile(ds, 0.99); p50 != 50*time.Microsecond || p99 != 99*time.Microsecond {
		t.Errorf("p50, p99 = %v, %v; want 50µs, 99µs", p50, p99)
	}
}

func TestParse(t *testing.T) {
	sizes, err := parseSizes("64, 1200,64")
	if err != nil || !slices.Equal(sizes, []int{64, 1200}) {
		t.Errorf("parseSizes = %v, %v", sizes, err)
	}
	for _, bad := range []string{"", "7", "65508", "x"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) succeeded", bad)
		}
	}
	scs, err := parseScenarios("pingpong,send")
	if err != nil || len(scs) != 2 || scs[0].name != "pingpong" {
		t.Errorf("parseScenarios = %v, %v", scs, err)
	}
	if _, err := parseScenarios("send,nope"); err == nil {
		t.Error("parseScenarios accepted an unknown scenario")
	}
}
