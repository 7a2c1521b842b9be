package miekgdns

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchconn/batchconn/integration/internal/itest"
)

// dnsperfSeconds is how long each dnsperf run sends queries.
const dnsperfSeconds = 3

// TestDNSPerf runs dnsperf (Debian package dnsperf) against the server for
// a few seconds, at as many queries per second as it can get answered with
// 100 outstanding, and requires that it lost none: every query it sent was
// answered, NOERROR, within its 2s timeout. dnsperf checks only IDs and
// response codes; TestServer checks content.
func TestDNSPerf(t *testing.T) {
	dnsperf, err := exec.LookPath("dnsperf")
	if err != nil {
		t.Skip("dnsperf is not installed (Debian: apt-get install -y dnsperf): skipping the dnsperf load run")
	}
	data := filepath.Join(t.TempDir(), "queries")
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "%s TXT\n", name(i))
	}
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range itest.Kinds {
		t.Run(kind.Name, func(t *testing.T) {
			s := startServer(t, kind, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, dnsperf,
				"-s", "127.0.0.1", "-p", strconv.Itoa(s.addr().Port), "-d", data,
				"-l", strconv.Itoa(dnsperfSeconds), "-c", "4", "-q", "100", "-t", "2", "-b", "4096")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("dnsperf: %v\n%s", err, out)
			}
			r, err := parseDNSPerf(string(out))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			t.Logf("dnsperf: %d sent, %d completed, %d lost, %d NOERROR, %.0f queries/s", r.sent, r.completed, r.lost, r.noerror, r.qps)
			if r.sent == 0 || r.lost != 0 || r.completed != r.sent || r.noerror != r.completed {
				t.Errorf("dnsperf lost queries or got errors:\n%s", out)
			}
			if err := s.stop(); err != nil {
				t.Error(err)
			}
			if st, ok := itest.Stats(s.pc); ok {
				t.Logf("server stats: %+v", st)
				if st.DatagramsRead < uint64(r.sent) || st.DatagramsWritten < uint64(r.completed) {
					t.Errorf("batchconn read %d and wrote %d datagrams for %d queries: traffic bypassed it",
						st.DatagramsRead, st.DatagramsWritten, r.sent)
				}
			}
		})
	}
}

type dnsperfResult struct {
	sent, completed, lost, noerror int64
	qps                            float64
}

var dnsperfLine = regexp.MustCompile(`^\s*(Queries sent|Queries completed|Queries lost|Response codes|Queries per second):\s*(\S+)\s*(\S*)`)

func parseDNSPerf(out string) (dnsperfResult, error) {
	var r dnsperfResult
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := dnsperfLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		seen[m[1]] = true
		var err error
		switch m[1] {
		case "Queries sent":
			r.sent, err = strconv.ParseInt(m[2], 10, 64)
		case "Queries completed":
			r.completed, err = strconv.ParseInt(m[2], 10, 64)
		case "Queries lost":
			r.lost, err = strconv.ParseInt(m[2], 10, 64)
		case "Response codes":
			if strings.TrimSuffix(m[2], ",") == "NOERROR" {
				r.noerror, err = strconv.ParseInt(strings.TrimSuffix(m[3], ","), 10, 64)
			}
		case "Queries per second":
			r.qps, err = strconv.ParseFloat(m[2], 64)
		}
		if err != nil {
			return r, fmt.Errorf("dnsperf output: %q: %v", sc.Text(), err)
		}
	}
	for _, k := range []string{"Queries sent", "Queries completed", "Queries lost", "Response codes"} {
		if !seen[k] {
			return r, fmt.Errorf("dnsperf output has no %q line", k)
		}
	}
	return r, nil
}
