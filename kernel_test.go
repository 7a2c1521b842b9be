package batchconn

import "testing"

func TestKernelReleaseParses(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    kernelVersion
		ok      bool
	}{
		{"6.18.0", kernelVersion{6, 18, 0, 0}, true},
		{"7.0.2-6-pve", kernelVersion{7, 0, 2, 0}, true},
		{"6.8.0-51-generic", kernelVersion{6, 8, 0, 0}, true},
		{"4.18.0-553.el8_10.x86_64", kernelVersion{4, 18, 0, 0}, true},
		{"5.12.0-rc1", kernelVersion{5, 12, 0, 1}, true},
		{"6.1-rc2", kernelVersion{6, 1, 0, 2}, true},
		{"5.15.167.4-microsoft-standard-WSL2", kernelVersion{5, 15, 167, 0}, true},
		{"6.18.44-fc-v657", kernelVersion{6, 18, 44, 0}, true},
		{"6.6.44+", kernelVersion{6, 6, 44, 0}, true},
		{"5.4", kernelVersion{5, 4, 0, 0}, true},
		{"7.0.0-rc", kernelVersion{7, 0, 0, 0}, true}, // no number: not read as a candidate
		{"", kernelVersion{}, false},
		{"garbage", kernelVersion{}, false},
		{"6", kernelVersion{}, false},
		{"6.", kernelVersion{}, false},
		{"6.x.1", kernelVersion{}, false},
		{"v6.1.0", kernelVersion{}, false},
		{".6.1", kernelVersion{}, false},
		{"99999999999999999999.1.0", kernelVersion{}, false},
		{"6.1.9999999", kernelVersion{}, false},
	} {
		got, ok := parseKernelRelease(tc.release)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseKernelRelease(%q) = %+v, %v; want %+v, %v", tc.release, got, ok, tc.want, tc.ok)
		}
	}
}

func TestKernelGatesAtTheBoundaries(t *testing.T) {
	for _, tc := range []struct {
		release           string
		gso, gro, unequal bool // unequal: equal-length runs are unsafe
	}{
		{"4.18.0-553.el8_10.x86_64", false, false, false}, // quic-go#4394
		{"4.20.17", false, false, false},
		{"5.0.0-rc8", false, false, false}, // a candidate comes before 5.0
		{"5.0.0", true, false, false},
		{"5.4.0-216-generic", true, false, false},
		{"5.11.22", true, false, false},
		{"5.12.0-rc1", true, false, false}, // before the getsockopt(UDP_GRO) fix
		{"5.12.0", true, true, false},
		{"6.8.0-51-generic", true, true, false},
		{"6.17.0-41-generic", true, true, false}, // tailscale#21335: see equalRunsFrom
		{"6.18.0", true, true, false},
		{"6.19.3", true, true, false},
		{"7.0.0-rc1", true, true, true}, // b10b446 came in with rc1
		{"7.0.0", true, true, true},
		{"7.0.2-6-pve", true, true, true},
		{"7.0.14-pve", true, true, true}, // carries the fix, tailscale#20994; the version cannot tell
		{"7.1.0-rc5", true, true, true},
		{"7.1.4", true, true, true},
		{"7.1.5", true, true, false},
		{"7.2.0", true, true, false},
		{"", false, false, true},
		{"garbage", false, false, true},
	} {
		g := gatesFor(tc.release)
		want := kernelGates{gso: tc.gso, gro: tc.gro, equalRunsUnsafe: tc.unequal}
		if g != want {
			t.Errorf("gatesFor(%q) = %+v, want %+v", tc.release, g, want)
		}
	}
}

func TestKernelVersionOrder(t *testing.T) {
	// In order, each before the next.
	order := []string{"4.18.0", "5.0.0-rc1", "5.0.0-rc2", "5.0.0-rc10", "5.0.0", "5.0.1", "5.1.0-rc1", "5.1.0", "5.12.0", "6.0.0", "7.0.0-rc1", "7.0.0"}
	for i := range order {
		for j := range order {
			a, _ := parseKernelRelease(order[i])
			b, _ := parseKernelRelease(order[j])
			got := a.compare(b)
			if i < j && got >= 0 || i == j && got != 0 || i > j && got <= 0 {
				t.Errorf("compare(%s, %s) = %d", order[i], order[j], got)
			}
		}
	}
}
