package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batchconn/batchconn"
	"go.uber.org/goleak"
)

// TestMain fails the tests if a goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testDuration = 20 * time.Millisecond // long enough to see every path
	testConns    = 50                    // idle's
)

// durationFor is testDuration, longer for recv and recvgso, whose reader
// competes with busy senders for a time slice or two of 10ms.
func durationFor(sc scenario) time.Duration {
	if strings.HasPrefix(sc.name, "recv") {
		return 100 * time.Millisecond
	}
	return testDuration
}

// TestScenarios runs every scenario briefly in each of its modes: each
// must end by itself, measure something and see nothing wrong.
func TestScenarios(t *testing.T) { runAll(t, allScenarios, 200, nil) }

func runAll(t *testing.T, scs []scenario, size int, r *remote) {
	for _, j := range jobs(options{scenarios: scs, sizes: []int{size}}) {
		for _, m := range j.scenario.modesFor(r) {
			t.Run(strings.ReplaceAll(j.String(), " ", "_")+"/"+string(m), func(t *testing.T) {
				checkRun(t, j, params{mode: m, size: j.size, op: j.op, duration: durationFor(j.scenario), conns: testConns, remote: r})
			})
		}
	}
}

// TestRemote runs the scenarios that can against a -listen server here.
func TestRemote(t *testing.T) {
	srv, base := startTestServer(t)
	defer srv.close()
	r, err := parseTarget(base)
	if err != nil {
		t.Fatal(err)
	}
	runAll(t, must(parseScenarios("", true)), 100, r)
	if srv.sunk.Load() == 0 {
		t.Error("the server's sinks discarded nothing")
	}
	select {
	case err := <-srv.errs:
		t.Errorf("server: %v", err)
	default:
	}
}

// startTestServer starts a -listen server on the first free ports.
func startTestServer(t *testing.T) (*server, string) {
	for range 20 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(30000))
		if srv, err := startServer(addr); err == nil {
			return srv, addr
		}
	}
	t.Fatal("found no free run of ports")
	return nil, ""
}

func checkRun(t *testing.T, j job, p params) {
	t.Helper()
	s := j.scenario.measure(p)
	if len(s.problems) > 0 {
		t.Fatalf("problems: %q", s.problems)
	}
	if s.count == 0 && strings.HasPrefix(j.scenario.name, "recv") && s.arrived > 0 {
		// Busy feeders can starve the reader for a short duration; it
		// read once they stopped, which shows its reads work.
		t.Logf("the reader got no CPU in the duration; read %d datagrams after", s.arrived)
		return
	}
	if s.count == 0 || s.rate() <= 0 {
		t.Fatalf("measured nothing: %+v %+v", s, s.stats)
	}
	switch j.scenario.kind {
	case kindLatency:
		if s.p50 <= 0 || s.p99 < s.p50 {
			t.Errorf("p50, p99 = %v, %v", s.p50, s.p99)
		}
	case kindFresh:
		if s.bytes <= 0 || s.cpu <= 0 {
			t.Errorf("%d queries allocated %.0f bytes each, took %v of CPU", s.count, s.bytes, s.cpu)
		}
	case kindIdle: // the heap held may even be below zero
		if s.count != uint64(p.conns) {
			t.Errorf("%d conns opened, want %d", s.count, p.conns)
		}
	}
	// The conn under test's Stats, where it is one here; fresh and idle
	// have a conn per query, and sum none.
	perQuery := j.scenario.kind == kindFresh || j.scenario.kind == kindIdle
	sender := slices.Contains([]string{"send", "send16", "fanout"}, j.scenario.name) // the conn under test is the client's
	if local := p.remote == nil || sender; local && !perQuery && p.mode.batched() != (s.stats != nil) {
		t.Errorf("stats = %v in mode %s", s.stats, p.mode)
	}
}

// TestModes: each scenario runs plain first, then the modes that fit
// it: the loops where they stand in for the conn, rawgso where batchconn
// sends runs with GSO, rawgro where runs come coalesced, strict where a
// server sends to many peers in turn.
func TestModes(t *testing.T) {
	loops := []string{"send", "send16", "recv", "recvgso"}
	for _, sc := range allScenarios {
		want := map[mode]bool{
			modeXnet:   slices.Contains(loops, sc.name) || sc.name == "echo" || sc.name == "pingpong",
			modeRaw:    slices.Contains(loops, sc.name) && rawAvailable,
			modeRawGSO: (sc.name == "send" || sc.name == "send16") && rawAvailable,
			modeRawGRO: sc.name == "recvgso" && rawAvailable,
			modeStrict: sc.name == "fanout",
		}
		modes := sc.modesFor(nil)
		for m, want := range want {
			if has := slices.Contains(modes, m); has != want {
				t.Errorf("%s runs %s: %v, want %v", sc.name, m, has, want)
			}
		}
		if modes[0] != modePlain || !slices.Contains(modes, modeBatch) || slices.ContainsFunc(sc.modesFor(&remote{}), mode.raw) {
			t.Errorf("%s runs %v, with -target %v", sc.name, modes, sc.modesFor(&remote{}))
		}
	}
	for _, m := range []mode{modeXnet, modeRaw, modeRawGSO, modeRawGRO} {
		if !m.loop() || m.batched() {
			t.Errorf("%s: loop %v, batched %v", m, m.loop(), m.batched())
		}
	}
	if cfg := modeStrict.config(); !modeStrict.batched() || cfg == nil || !cfg.StrictOrder || cfg.NoOffload {
		t.Errorf("strict: batched %v, config %+v", modeStrict.batched(), cfg)
	}
	for _, m := range []mode{modeBatch, modeNoOffload} {
		if cfg := m.config(); !m.batched() || cfg != nil && cfg.StrictOrder {
			t.Errorf("%s: batched %v, config %+v", m, m.batched(), cfg)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestOrder(t *testing.T) {
	p := make([]byte, 16)
	var o order
	for _, seq := range []uint64{0, 1, 5, 1 << streamShift, 6, 4, 1 << streamShift} {
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
	scs, err := parseScenarios("pingpong,send", false)
	if err != nil || len(scs) != 2 || scs[0].name != "pingpong" {
		t.Errorf("parseScenarios = %v, %v", scs, err)
	}
	if scs, _ := parseScenarios("", false); len(scs) != len(allScenarios) {
		t.Errorf("parseScenarios picks %d by default", len(scs))
	}
	if scs, _ := parseScenarios("", true); slices.ContainsFunc(scs, func(s scenario) bool { return !s.remoteOK }) {
		t.Error("parseScenarios picks a loopback-only scenario with -target")
	}
	for _, bad := range []struct {
		list   string
		remote bool
	}{{"send,nope", false}, {"recv", true}} {
		if _, err := parseScenarios(bad.list, bad.remote); err == nil {
			t.Errorf("parseScenarios(%q, %v) succeeded", bad.list, bad.remote)
		}
	}
	if r, err := parseTarget("[::1]:9000"); err != nil || r.network() != "udp6" || r.echo(modeBatch).Port() != 9001 || r.sinkAddrs(16)[15].Port() != 9017 || r.echo(modeNoOffload).Port() != 9018 || r.echo(modeXnet).Port() != 9019 {
		t.Errorf("parseTarget = %+v, %v", r, err)
	}
	for _, bad := range []string{"127.0.0.1", "0.0.0.0:9000", "127.0.0.1:65517", "127.0.0.1:0"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) succeeded", bad)
		}
	}
}

func TestCheckSent(t *testing.T) {
	for _, c := range []struct {
		sent, read, drops uint64
		coalesced, ok     bool
	}{
		{100, 90, 10, false, true},
		{100, 90, 9, false, false},
		{100, 90, 1, true, true}, // a coalesced message of 10 counts as one drop
		{100, 90, 11, true, false},
		{100, 101, 0, false, false},
	} {
		s := sample{offered: c.sent, arrived: c.read, drops: c.drops, dropsKnown: true}
		s.arrivals, s.coalescedDrops = true, c.coalesced
		checkSent(&s)
		if ok := len(s.problems) == 0; ok != c.ok {
			t.Errorf("%+v: problems %q", c, s.problems)
		}
	}
}

// TestFeedersSendFromTheirGoroutine: every datagram of a recv feeder
// leaves from its goroutine, held on one CPU, none from batchconn's timer,
// which runs on any CPU, so that they arrive in order.
func TestFeedersSendFromTheirGoroutine(t *testing.T) {
	for _, feed := range []*batchconn.Config{{NoOffload: true}, nil} {
		sk, err := startSinks(1, 1200, plainSinks)
		if err != nil {
			t.Fatal(err)
		}
		txc, err := listen()
		if err != nil {
			sk.close()
			t.Fatal(err)
		}
		f := startFeeder(txc, feed, sk.addrs[0], 1200, 0, 100*time.Millisecond)
		<-f.done // it stops by itself after 100ms
		var s sample
		sent := stopFeeders([]*feeder{f}, &s)
		sk.settle()
		sk.check(&s)
		if st := f.conn.Stats(); len(s.problems) > 0 || sent == 0 || st.DatagramsWritten != sent || st.FlushTimer != 0 {
			t.Errorf("feeder with %+v: sent %d, problems %q, %+v", feed, sent, s.problems, st)
		}
	}
}

// A reply that waits when the read deadline has passed (a process starved
// of CPU past it) is read, on plain and on batchconn; with nothing
// waiting, the deadline holds.
func TestReadLateReadsWhatWaits(t *testing.T) {
	for _, m := range []mode{modePlain, modeBatch} {
		rx, tx := must(listen()), must(listen())
		cl := wrap(rx, m).(interface {
			addrPortReader
			SetReadDeadline(time.Time) error
		})
		tx.WriteToUDPAddrPort([]byte("late"), addrPort(rx))
		cl.SetReadDeadline(time.Now().Add(-time.Second))
		buf := make([]byte, 16)
		if n, _, err := readLate(cl, buf); err != nil || string(buf[:n]) != "late" {
			t.Errorf("%s: readLate = %q, %v; want the waiting reply", m, buf[:n], err)
		}
		if _, _, err := readLate(cl, buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: readLate with nothing waiting = %v, want the deadline", m, err)
		}
		rx.Close()
		tx.Close()
	}
}
