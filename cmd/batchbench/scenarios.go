package main

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/batchconn/batchconn"
)

const (
	readBuffer  = 8 << 20 // asked of every measured receive queue
	requestSize = 64      // echo and pingpong requests, lone's datagrams, the allocs loops
	minSize     = 8       // room for the sequence number
	maxPayload  = 65507   // the largest UDP payload over IPv4
	maxDatagram = 65536   // receive buffers: room for any datagram
	batchSize   = 64      // batchconn's default Config.BatchSize
	fanoutSize  = 1200    // fanout's datagrams: a media or game packet, under any path's MTU

	// grace is the longest a run waits for the network beyond its
	// duration: for a receiver to read what is queued, for a reply, for a
	// blocked write.
	grace = 2 * time.Second

	// lossTimeout is how long echo and pingpong wait for a reply before
	// they take the requests in flight for lost and go on.
	lossTimeout = 200 * time.Millisecond
)

// mode is the conn under test: plain *net.UDPConn, or batchconn over one,
// with its defaults (UDP segmentation offload on where the kernel has it),
// with each destination's datagrams grouped, or with offload off; or, for
// xnet, raw and rawgro, no conn at all but the scenario's loop written
// with batch calls on the socket.
type mode string

const (
	modePlain     mode = "plain"
	modeBatch     mode = "batchconn" // batchconn.New(uc, nil)
	modeNoOffload mode = "nooffload" // batchconn.New(uc, &batchconn.Config{NoOffload: true})

	// modeGrouped is batchconn with Config.GroupByDestination, the switch
	// a fan-out server turns on: each destination's queued datagrams
	// leave together, so that GSO carries round-robin traffic as runs.
	modeGrouped mode = "grouped"

	// modeXnet is the alternative a user would otherwise choose: the
	// scenario's loop written by hand with golang.org/x/net's
	// ReadBatch and WriteBatch of batchSize messages (xnet.go).
	modeXnet mode = "xnet"

	// modeRaw is the ceiling of batching without offload: the send and
	// receive loops written directly with sendmmsg and recvmmsg of
	// batchSize messages, one datagram each, no offload (raw_linux.go).
	// It is neither a net.PacketConn nor a batchconn: what the batch
	// calls alone reach in this harness, on this machine, with nothing in
	// between.
	modeRaw mode = "raw"

	// modeRawGRO is recvgso's ceiling, that of batching with offload: raw's
	// receive loop on a socket with UDP_GRO, each message a 64 KiB buffer
	// split into its datagrams in place (raw_linux.go). batchconn turns
	// GRO on; raw, without it, cannot say how close batchconn comes to
	// what the kernel delivers.
	modeRawGRO mode = "rawgro"
)

// The modes a scenario runs, in the order each round runs them:
// loopModes where a loop written with batch calls can stand in for the
// conn (raw too where it is available), groModes for recvgso, whose
// sender's runs GRO can keep whole (loopModes and rawgro where it is
// available), serverModes for the echo server,
// latencyModes for one request at a time, fanoutModes for the choice a
// fan-out server makes (batchconn's defaults or GroupByDestination),
// twoModes elsewhere.
var (
	serverModes  = []mode{modePlain, modeBatch, modeNoOffload, modeXnet}
	loopModes    = withRaw(serverModes)
	groModes     = withRawGRO(loopModes)
	latencyModes = []mode{modePlain, modeBatch, modeXnet}
	fanoutModes  = []mode{modePlain, modeBatch, modeGrouped, modeNoOffload}
	twoModes     = []mode{modePlain, modeBatch}
)

// withRaw is ms and then raw, or ms alone where raw is not available.
func withRaw(ms []mode) []mode {
	if !rawAvailable {
		return ms
	}
	return append(slices.Clip(ms), modeRaw)
}

// withRawGRO is ms and then rawgro, or ms alone where it is not available.
func withRawGRO(ms []mode) []mode {
	if !rawAvailable {
		return ms
	}
	return append(slices.Clip(ms), modeRawGRO)
}

// loop reports whether the mode is a loop written with batch calls on the
// socket rather than a net.PacketConn.
func (m mode) loop() bool { return m == modeXnet || m == modeRaw || m == modeRawGRO }

// batched reports whether the conn under test is a batchconn.
func (m mode) batched() bool { return m == modeBatch || m == modeGrouped || m == modeNoOffload }

// config is the batchconn Config of mode m.
func (m mode) config() *batchconn.Config {
	switch m {
	case modeNoOffload:
		return &batchconn.Config{NoOffload: true}
	case modeGrouped:
		return &batchconn.Config{GroupByDestination: true}
	}
	return nil
}

// params are what one run measures.
type params struct {
	mode     mode
	size     int           // payload bytes
	op       string        // allocs: the call measured
	duration time.Duration // how long it measures
	conns    int           // idle: how many conns it holds open
	remote   *remote       // with -target: the far end; nil on loopback
}

// kind is what a scenario measures, and so which figures its rows have
// and how the report shows them.
type kind int

const (
	kindRate    kind = iota // datagrams (responses) delivered a second
	kindLatency             // delays: p50 and p99
	kindAllocs              // heap allocations of one call
	kindFresh               // queries a second and bytes allocated, a socket each
	kindIdle                // heap held per open, quiet conn
)

// scenario is one measurement, run once per mode, round, size and op.
type scenario struct {
	name      string
	about     string // what it does, in a user's terms: the report's heading
	unit      string // what its count counts: datagram, response, round trip
	kind      kind
	modes     []mode   // loopModes, groModes, serverModes, latencyModes, fanoutModes or twoModes
	fixedSize int      // the one payload size it uses; 0: each of -sizes
	ops       []string // allocs: the calls it measures, a row each
	remoteOK  bool     // it runs against a -target
	once      bool     // one round whatever -rounds: its figure is a count, not a rate
	run       func(p params) sample
}

var allScenarios = []scenario{
	{name: "send", about: "one goroutine writes to one receiver as fast as the conn takes datagrams (a bulk sender)",
		unit: "datagram", modes: loopModes, remoteOK: true, run: runSend},
	{name: "send16", about: "the same, round-robin to 16 receivers (a server answering many peers: no two datagrams in a row to one)",
		unit: "datagram", modes: loopModes, remoteOK: true, run: runSend16},
	{name: "fanout", about: "1200 B datagrams round-robin to 16 receivers that read through batchconn, as batching peers do (a media relay or game server sending each packet to many peers)",
		unit: "datagram", modes: fanoutModes, fixedSize: fanoutSize, remoteOK: true, run: runFanout},
	{name: "recv", about: "one goroutine reads while two senders keep its queue full (a busy server's reads)",
		unit: "datagram", modes: loopModes, run: runRecv},
	{name: "recvgso", about: "the same, from one sender that sends with GSO, as quic-go, wireguard-go and batchconn do",
		unit: "datagram", modes: groModes, run: runRecvGSO},
	{name: "echo", about: "an echo server on the conn, its client keeping 64 requests in flight (a DNS or game server under load)",
		unit: "response", modes: serverModes, fixedSize: requestSize, remoteOK: true, run: runEcho},
	{name: "pingpong", about: "the echo server again, one request at a time (a quiet request/response service): round trip",
		unit: "round trip", kind: kindLatency, modes: latencyModes, fixedSize: requestSize, remoteOK: true, run: runPingPong},
	{name: "lone", about: "one datagram every 200µs to a receiver (sparse traffic): delay from WriteTo to the receiver's read",
		unit: "datagram", kind: kindLatency, modes: twoModes, fixedSize: requestSize, run: runLone},
	{name: "allocs", about: "heap objects each call allocates per datagram, steady state (garbage for the GC)",
		unit: "datagram", kind: kindAllocs, modes: twoModes, fixedSize: requestSize, ops: allocOps, run: runAllocs},
	{name: "fresh", about: "a new socket per query: dial a connected UDP socket, wrap it, write 40 B, read the reply, close (DNS, NTP, STUN clients)",
		unit: "query", kind: kindFresh, modes: freshModes, fixedSize: queryBytes, run: runFresh},
	{name: "idle", about: "conns that each exchanged one datagram with an echo server and stay open (many quiet peers)",
		unit: "conn", kind: kindIdle, modes: twoModes, fixedSize: queryBytes, once: true, run: runIdle},
}

// rounds is how many rounds the scenario runs of the -rounds asked.
func (sc scenario) rounds(asked int) int {
	if sc.once {
		return 1
	}
	return asked
}

// limit is how long a run of sc may take before it is taken for hung:
// its duration and the grace periods it waits for the network, and for
// idle time to open and close its conns.
func (sc scenario) limit(p params) time.Duration {
	d := 2*p.duration + 4*grace
	if sc.kind == kindIdle {
		d += time.Duration(p.conns) * 10 * time.Millisecond
	}
	return d
}

// measure runs the scenario once and checks what every run must keep to.
func (sc scenario) measure(p params) sample {
	s := sc.run(p)
	checkNoOffload(&s, p.mode)
	return s
}

func scenarioNames(remoteOnly bool) []string {
	var names []string
	for _, sc := range allScenarios {
		if sc.remoteOK || !remoteOnly {
			names = append(names, sc.name)
		}
	}
	return names
}

// sample is the outcome of one run.
type sample struct {
	// What PER SEC counts, in the time it took: datagrams delivered to
	// the receiving code (send: those the receivers read; recv: those
	// ReadFrom returned), responses the echo client read, round trips,
	// queries answered; with -target, send counts what the kernel took
	// (sentOnly).
	count    uint64
	elapsed  time.Duration
	sentOnly bool

	// send, send16, fanout: the datagrams the sender handed the kernel,
	// and the time until Close returned.
	sent     uint64
	sendTime time.Duration

	// Datagrams (requests for echo and pingpong) sent toward the
	// receiver, and those that reached it (send: it read them; recv: they
	// found room in its queue; echo and pingpong: they were answered),
	// where arrivals. drops is the kernel's count of datagrams dropped at
	// the receivers' full queues, where dropsKnown.
	offered, arrived, drops uint64
	arrivals, dropsKnown    bool
	coalescedDrops          bool // drops counts runs as one (receivers with GRO): a lower bound

	p50, p99 time.Duration // latency scenarios
	allocs   float64       // heap objects allocated in the process, per count
	cpu      time.Duration // the process's CPU time while it measured (meter)

	// fresh: bytes allocated per query; idle: heap held per conn.
	allocBytes, heapBytes float64

	stats    *batchconn.Stats // the conn under test's, in the batchconn modes
	calls    *callCounts      // xnet's, raw's and rawgro's own count of their batch calls
	problems []string         // anything that should not have happened
}

// callCounts are what xnet's, raw's and rawgro's batch calls moved,
// counted by their loops as batchconn's Stats count them: a call is one
// that returned (datagrams or an error), not one that found the socket
// not ready and waited (raw, rawgro; x/net does not tell); rawgro counts
// the datagrams in its coalesced messages.
type callCounts struct {
	Read       uint64 `json:"datagrams_read"`
	ReadCalls  uint64 `json:"read_calls"` // recvmmsg, ReadBatch
	Written    uint64 `json:"datagrams_written"`
	WriteCalls uint64 `json:"write_calls"` // sendmmsg, WriteBatch
}

func (c *callCounts) add(o *callCounts) {
	c.Read += o.Read
	c.ReadCalls += o.ReadCalls
	c.Written += o.Written
	c.WriteCalls += o.WriteCalls
}

func (s *sample) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// rate is count per second.
func (s *sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.count) / s.elapsed.Seconds()
}

// describe is the progress line's summary of a finished run.
func (sc scenario) describe(s sample, size int) string {
	switch {
	case len(s.problems) > 0:
		return fmt.Sprintf("%d problem(s): %s", len(s.problems), s.problems[0])
	case sc.kind == kindAllocs:
		return fmt.Sprintf("%.2f allocs/datagram", s.allocs)
	case sc.kind == kindLatency:
		return fmt.Sprintf("p50 %.1f µs, p99 %.1f µs", micros(s.p50), micros(s.p99))
	case sc.kind == kindFresh:
		return fmt.Sprintf("%.0f queries/s, %.0f bytes allocated a query", s.rate(), s.allocBytes)
	case sc.kind == kindIdle:
		return fmt.Sprintf("%d conns, %.0f bytes of heap held a conn", s.count, s.heapBytes)
	case s.sentOnly:
		return fmt.Sprintf("%.0f sent/s", s.rate())
	default:
		return fmt.Sprintf("%.0f %ss/s, %.1f MB/s", s.rate(), sc.unit, s.rate()*float64(size)/1e6)
	}
}

// percentile returns the p-quantile of ds (nearest rank); it sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// mallocs is the number of heap objects the process allocated so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// epoch is a fixed time that receivers note their reads against.
var epoch = time.Now()

// meter measures what a run costs the whole process from startMeter to
// stop: heap objects allocated and CPU time, both ends of the traffic
// together where both are in the process.
type meter struct {
	mallocs uint64
	cpu     time.Duration
}

func startMeter() meter {
	cpu, _ := processCPU()
	return meter{mallocs(), cpu}
}

// stop sets s's allocations per datagram, over n, and its CPU time.
func (m meter) stop(s *sample, n uint64) {
	s.allocs = perDatagram(mallocs()-m.mallocs, n)
	cpu, _ := processCPU()
	s.cpu = cpu - m.cpu
}

// perDatagram is n over count, 0 for none.
func perDatagram(n, count uint64) float64 {
	if count == 0 {
		return 0
	}
	return float64(n) / float64(count)
}

// listen opens a plain IPv4 UDP socket on a free loopback port.
func listen() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}

// listen opens the run's client socket: on loopback, or on any local
// address of the family of the -target.
func (p params) listen() (*net.UDPConn, error) {
	if p.remote == nil {
		return listen()
	}
	return net.ListenUDP(p.remote.network(), nil)
}

// addrPort is uc's local address, IPv4 unmapped.
func addrPort(uc *net.UDPConn) netip.AddrPort {
	ap := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// port is uc's local port.
func port(uc *net.UDPConn) int { return uc.LocalAddr().(*net.UDPAddr).Port }

// wrap returns the conn under test for m.
func wrap(uc *net.UDPConn, m mode) net.PacketConn {
	if m.batched() {
		return batchconn.New(uc, m.config())
	}
	return uc
}

// statsOf returns pc's batchconn counters, or nil for a plain conn.
func statsOf(pc net.PacketConn) *batchconn.Stats {
	if bc, ok := pc.(*batchconn.PacketConn); ok {
		st := bc.Stats()
		return &st
	}
	return nil
}

// checkNoOffload notes a problem if the conn under test moved datagrams
// with segmentation offload in nooffload mode.
func checkNoOffload(s *sample, m mode) {
	if st := s.stats; m == modeNoOffload && st != nil && (st.OffloadSent != 0 || st.OffloadReceived != 0) {
		s.problem("offload is off, yet Stats counts %d datagrams sent and %d received with it",
			st.OffloadSent, st.OffloadReceived)
	}
}

// The methods *net.UDPConn and *batchconn.PacketConn share beyond
// net.PacketConn.
type (
	addrPortWriter interface {
		WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error)
	}
	addrPortReader interface {
		ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error)
	}
)
