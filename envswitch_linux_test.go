package batchconn

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// BATCHCONN_DISABLE, read once per process, so each value runs in a child
// process of the test binary.
func TestOperatorSwitchTurnsFeaturesOff(t *testing.T) {
	if v, ok := os.LookupEnv("BATCHCONN_TEST_SWITCH"); ok {
		c, peer := diffCase{}.listen(t)
		conn := newConn(c, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
		defer conn.Close()
		defer peer.Close()
		got := "batching"
		if !conn.Batching() {
			got = "one at a time"
		} else {
			m := conn.b().r.io.(*mmsgIO)
			if !m.tx.gso.allowed {
				got += ", no gso"
			}
			if m.gro() == groNever {
				got += ", no gro"
			}
		}
		if got != v {
			t.Fatalf("BATCHCONN_DISABLE=%q: %s, want %s", os.Getenv(disableEnv), got, v)
		}
		return
	}
	for _, tc := range []struct{ value, want, stderr string }{
		{"", "batching", ""},
		{"gso", "batching, no gso", ""},
		{"GRO", "batching, no gro", ""},
		{"gso, gro", "batching, no gso, no gro", ""},
		{"batch", "one at a time", ""},
		{"all", "one at a time", ""},
		{"gso,bogus", "batching, no gso", `ignoring ["bogus"]`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestOperatorSwitchTurnsFeaturesOff$", "-test.count=1")
			cmd.Env = append(os.Environ(), "BATCHCONN_TEST_SWITCH="+tc.want, disableEnv+"="+tc.value)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s=%q: %v\n%s", disableEnv, tc.value, err, out)
			}
			if tc.stderr != "" && strings.Count(string(out), tc.stderr) != 1 {
				t.Fatalf("%s=%q: want one report containing %s, got:\n%s", disableEnv, tc.value, tc.stderr, out)
			}
		})
	}
}
