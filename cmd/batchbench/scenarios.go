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
	requestSize = 64      // echo and pingpong requests, lone's datagrams, allocs
	minSize     = 8       // room for the sequence number
	maxPayload  = 65507   // the largest UDP payload over IPv4
	maxDatagram = 65536   // receive buffers: room for any datagram
	batchSize   = 64      // batchconn's default Config.BatchSize, and the loops'
	fanoutSize  = 1200    // a media or game packet, under any path's MTU

	grace       = 2 * time.Second        // the longest a run waits for the network past its duration
	lossTimeout = 200 * time.Millisecond // before echo and pingpong take the requests in flight for lost
)

// mode is what a run measures: a conn, or for the loop modes the
// scenario's loop written with batch calls on the socket.
type mode string

const (
	modePlain     mode = "plain"
	modeBatch     mode = "batchconn"
	modeStrict    mode = "strict"    // Config.StrictOrder
	modeNoOffload mode = "nooffload" // Config.NoOffload
	modeXnet      mode = "xnet"      // x/net's ReadBatch and WriteBatch (xnet.go)
	modeRaw       mode = "raw"       // sendmmsg and recvmmsg (raw_linux.go)
	modeRawGSO    mode = "rawgso"    // raw's sendmmsg with UDP_SEGMENT (raw_gso_linux.go)
	modeRawGRO    mode = "rawgro"    // raw's recvmmsg with UDP_GRO
)

// The modes each scenario runs, in turn (see modesFor).
var (
	serverModes = []mode{modePlain, modeBatch, modeNoOffload, modeXnet}
	loopModes   = []mode{modePlain, modeBatch, modeNoOffload, modeXnet, modeRaw}
	sendModes   = []mode{modePlain, modeBatch, modeNoOffload, modeXnet, modeRaw, modeRawGSO}
	groModes    = []mode{modePlain, modeBatch, modeNoOffload, modeXnet, modeRaw, modeRawGRO}
	twoModes    = []mode{modePlain, modeBatch}
)

// loop reports whether the mode is a loop on the socket, not a conn.
func (m mode) loop() bool { return m == modeXnet || m.raw() }

// raw reports whether the mode is one of the raw loops, which run on
// Linux and loopback alone.
func (m mode) raw() bool { return m == modeRaw || m == modeRawGSO || m == modeRawGRO }

// batched reports whether the conn under test is a batchconn.
func (m mode) batched() bool { return m == modeBatch || m == modeStrict || m == modeNoOffload }

func (m mode) config() *batchconn.Config {
	switch m {
	case modeNoOffload:
		return &batchconn.Config{NoOffload: true}
	case modeStrict:
		return &batchconn.Config{StrictOrder: true}
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

// kind is what a scenario measures, and so which columns it has.
type kind int

const (
	kindRate    kind = iota // units delivered a second
	kindLatency             // delays: p50 and p99
	kindAllocs              // heap allocations of one call
	kindFresh               // queries a second and bytes allocated, a socket each
	kindIdle                // heap held per open, quiet conn
)

type scenario struct {
	name      string
	about     string // what it models: the report's heading
	unit      string // what its count counts
	kind      kind
	modes     []mode
	fixedSize int      // its one payload size; 0: each of -sizes
	ops       []string // allocs: the calls it measures, a row each
	remoteOK  bool     // it runs against a -target
	run       func(p params) sample
}

var allScenarios = []scenario{
	{name: "send", about: "one goroutine writes to one receiver as fast as the conn takes datagrams (a bulk sender)",
		unit: "datagram", modes: sendModes, remoteOK: true, run: runSend},
	{name: "send16", about: "the same, round-robin to 16 receivers (a server answering many peers: no two datagrams in a row to one)",
		unit: "datagram", modes: sendModes, remoteOK: true, run: runSend16},
	{name: "fanout", about: "1200 B datagrams round-robin to 16 receivers that read through batchconn, as batching peers do (a media relay or game server sending each packet to many peers)",
		unit: "datagram", modes: []mode{modePlain, modeBatch, modeStrict, modeNoOffload}, fixedSize: fanoutSize, remoteOK: true, run: runFanout},
	{name: "recv", about: "one goroutine reads while two senders keep its queue full (a busy server's reads)",
		unit: "datagram", modes: loopModes, run: runRecv},
	{name: "recvgso", about: "the same, from one sender that sends with GSO, as quic-go, wireguard-go and batchconn do",
		unit: "datagram", modes: groModes, run: runRecvGSO},
	{name: "echo", about: "an echo server on the conn, its client keeping 64 requests in flight (a DNS or game server under load)",
		unit: "response", modes: serverModes, fixedSize: requestSize, remoteOK: true, run: runEcho},
	{name: "pingpong", about: "the echo server again, one request at a time (a quiet request/response service): round trip",
		unit: "round trip", kind: kindLatency, modes: []mode{modePlain, modeBatch, modeXnet}, fixedSize: requestSize, remoteOK: true, run: runPingPong},
	{name: "lone", about: "one datagram every 200µs to a receiver (sparse traffic): delay from WriteTo to the receiver's read",
		unit: "datagram", kind: kindLatency, modes: twoModes, fixedSize: requestSize, run: runLone},
	{name: "allocs", about: fmt.Sprintf("heap objects each call allocates per %d B datagram, steady state (garbage for the GC)", requestSize),
		unit: "datagram", kind: kindAllocs, modes: twoModes, fixedSize: requestSize, ops: allocOps, run: runAllocs},
	{name: "fresh", about: "a new socket per query: dial a connected UDP socket, wrap it, write 40 B, read the reply, close (DNS, NTP, STUN clients)",
		unit: "query", kind: kindFresh, modes: []mode{modePlain, modeBatch, modeNoOffload}, fixedSize: queryBytes, run: runFresh},
	{name: "idle", about: fmt.Sprintf("%d conns that each exchanged one datagram with an echo server and stay open (many quiet peers)", idleConns),
		unit: "conn", kind: kindIdle, modes: twoModes, fixedSize: queryBytes, run: runIdle},
}

// modesFor are the modes sc runs: the raw modes only where the system
// has their calls, and on loopback, where they are the calls alone.
func (sc scenario) modesFor(remote *remote) []mode {
	return slices.DeleteFunc(slices.Clone(sc.modes), func(m mode) bool {
		return m.raw() && (remote != nil || !rawAvailable)
	})
}

// rounds is one for idle, whose figure is a count, not a rate.
func (sc scenario) rounds(asked int) int {
	if sc.kind == kindIdle {
		return 1
	}
	return asked
}

// measure runs the scenario once; nooffload must have used no offload.
func (sc scenario) measure(p params) sample {
	s := sc.run(p)
	if st := s.stats; p.mode == modeNoOffload && st != nil && (st.OffloadSent != 0 || st.OffloadReceived != 0) {
		s.problem("offload is off, yet Stats counts %d datagrams sent and %d received with it", st.OffloadSent, st.OffloadReceived)
	}
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
	// count units delivered to the receiving code in elapsed; sentOnly:
	// datagrams the sender's kernel took, nothing counting the far end.
	count    uint64
	elapsed  time.Duration
	sentOnly bool

	sendTime time.Duration // send, send16, fanout: until Close returned

	// Datagrams (requests) sent, and those that arrived (were answered)
	// where arrivals; the kernel's drops at the receivers' queues where
	// dropsKnown (see checkSent for coalescedDrops).
	offered, arrived, drops              uint64
	arrivals, dropsKnown, coalescedDrops bool

	p50, p99 time.Duration // latency scenarios
	allocs   float64       // heap objects allocated in the process, per count
	cpu      time.Duration // the process's CPU time while it measured
	bytes    float64       // fresh: heap allocated per query; idle: held per conn

	stats    *batchconn.Stats // the conn under test's, in the batchconn modes
	problems []string         // anything that should not have happened
}

func (s *sample) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// problemIf notes err, if any, as a problem with what, and reports
// whether there was one.
func (s *sample) problemIf(what string, err error) bool {
	if err != nil {
		s.problem("%s: %v", what, err)
	}
	return err != nil
}

func (s *sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.count) / s.elapsed.Seconds()
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

func memStats() runtime.MemStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// epoch is a fixed time that receivers note their reads against.
var epoch = time.Now()

// meter starts measuring the whole process's heap objects allocated and
// CPU time; stop sets them in s, the objects per n units.
func meter() (stop func(s *sample, n uint64)) {
	cpu0, _ := processCPU()
	mallocs := memStats().Mallocs
	return func(s *sample, n uint64) {
		s.allocs = float64(memStats().Mallocs-mallocs) / float64(max(n, 1))
		cpu, _ := processCPU()
		s.cpu = cpu - cpu0
	}
}

// listen opens a plain IPv4 UDP socket on a free loopback port.
func listen() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}

// listen opens the run's client socket, of the -target's family if any.
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

// Methods *net.UDPConn and *batchconn.PacketConn have beyond net.PacketConn.
type (
	addrPortWriter interface {
		WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error)
	}
	addrPortReader interface {
		ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error)
	}
)
