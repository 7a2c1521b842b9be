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
