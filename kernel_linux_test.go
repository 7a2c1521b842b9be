package batchconn

import "testing"

func TestKernelReleaseOfThisMachineParses(t *testing.T) {
	r := kernelRelease()
	v, ok := parseKernelRelease(r)
	if !ok {
		t.Fatalf("uname's release %q does not parse: every offload would go off here", r)
	}
	t.Logf("release %q: %+v, gates %+v", r, v, gatesFor(r))
}

// On kernels that mangle segmented messages of equal segments (7.0.0 to
// 7.1.4), a run of equal datagrams goes one datagram a message, in the
// same call; a run whose last datagram is shorter keeps GSO. Elsewhere
// both keep it.
func TestEqualRunsGoOneByOneOnKernelsThatMangleThem(t *testing.T) {
	for _, tc := range []struct {
		kernel          string
		equal, endShort uint64 // datagrams sent as segments
	}{
		{"7.0.2-6-pve", 0, 11},
		{"7.1.4", 0, 11},
		{"7.1.5", 10, 11},
		{"6.18.0", 10, 11},
	} {
		t.Run(tc.kernel, func(t *testing.T) {
			c, peer := queuedPair(t, Config{}, hooks{kernel: tc.kernel})
			equal := repeat(10, 1200)
			sendRun(t, c, peer.LocalAddr(), equal)
			expectRun(t, peer, equal)
			s := c.Stats()
			endShort := append(repeat(10, 1200), 300)
			sendRun(t, c, peer.LocalAddr(), endShort)
			expectRun(t, peer, endShort)
			e := c.Stats()
			if s.OffloadSent != tc.equal || e.OffloadSent-s.OffloadSent != tc.endShort || e.WriteCalls != 2 {
				t.Fatalf("segments sent: %d of an equal run, %d of one ending short, in %d calls; want %d, %d, in 2",
					s.OffloadSent, e.OffloadSent-s.OffloadSent, e.WriteCalls, tc.equal, tc.endShort)
			}
		})
	}
}

// Kernels where offload is known bad, or whose release cannot be read,
// get none: no GSO before 5.0, no GRO before 5.12.
func TestOffloadFollowsTheKernelsGates(t *testing.T) {
	for _, tc := range []struct {
		kernel   string
		gso, gro bool
	}{
		{"4.18.0-553.el8_10.x86_64", false, false},
		{"5.4.0-150-generic", true, false},
		{"5.12.0", true, true},
		{"garbage", false, false},
	} {
		t.Run(tc.kernel, func(t *testing.T) {
			c, _ := queuedPair(t, Config{}, hooks{kernel: tc.kernel})
			m := c.b().r.io.(*mmsgIO)
			if m.tx.gso.allowed != tc.gso || (m.gro() != groNever) != tc.gro {
				t.Fatalf("GSO %v, GRO state %v; want GSO %v, GRO possible %v", m.tx.gso.allowed, m.gro(), tc.gso, tc.gro)
			}
		})
	}
}
