package batchconn

import (
	"sync"
	"time"
)

// Config tunes a PacketConn. The zero value, or a nil *Config, selects the
// defaults; a zero or negative field selects that field's default.
type Config struct {
	// BatchSize is the most messages one system call moves, each way: a
	// message is one datagram, or with segmentation offload a run of up
	// to 64 (128 where the kernel takes it). The write queue is sent when
	// it holds BatchSize datagrams (8 times as many with offload, which
	// carries them in fewer messages). Default 64: one sendmmsg of 64
	// small datagrams costs about a third of 64 sendto calls on loopback,
	// and larger batches gain little. Values above 1024, the kernel's
	// limit per call, are lowered to 1024.
	BatchSize int

	// ReadSlotSize is the room for one received datagram in the read ring.
	// Default 65535, so that no UDP datagram, IPv4 or IPv6, is cut short by
	// the ring. A smaller value saves memory (the ring starts with one
	// slot and doubles, up to BatchSize slots, while reads find the kernel
	// holding more datagrams than it has slots) at a price: a datagram
	// longer than the slot is truncated to it, as if the caller's buffer
	// were that short, and GRO stays off.
	ReadSlotSize int

	// MaxDelay is the longest a queued datagram waits for others to join
	// its batch before the queue is sent. Default 50µs. Most datagrams do
	// not wait at all: see the package documentation for when the queue
	// goes out. Go's timers may fire later than asked when the process is
	// otherwise idle.
	MaxDelay time.Duration

	// QueueBytes bounds the payload bytes the write queue holds; a WriteTo
	// that finds the queue full sends it first, blocking as a
	// *net.UDPConn's WriteTo blocks on a full socket buffer. Default
	// 256 KiB, and 1 MiB for a conn whose queues fill with datagrams to
	// several destinations; values below 65535 are raised to it so that
	// any datagram fits, values above 64 MiB lowered to it (no batch
	// carries more).
	QueueBytes int

	// NoOffload turns UDP segmentation offload off: no GSO on send (runs
	// of datagrams to one destination as one message the kernel cuts
	// up), no GRO on receive (datagrams of one sender handed over as one
	// buffer). Offload is on by default where the kernel has it, and
	// turns itself off for a destination or socket the kernel refuses it
	// for.
	NoOffload bool

	// KernelChoosesSource leaves the source address of every datagram to
	// the kernel's route, as a *net.UDPConn does. By default, on a socket
	// bound to a wildcard address (0.0.0.0, ::), a datagram to a peer
	// leaves from the local address that peer last wrote to, so that a
	// server on a host with several addresses answers from the one it was
	// asked at (see the package documentation).
	KernelChoosesSource bool

	// StrictOrder sends queued datagrams in exactly the order they were
	// written, across destinations, as a *net.UDPConn does. By default,
	// when the queue goes out with segmentation offload, each
	// destination's datagrams leave together (A B C A B C as A A B B C C),
	// so that a server sending to many peers in turn gets runs that GSO
	// carries. Each destination's datagrams keep their order either way,
	// and so do datagrams to destinations that may be one socket on this
	// host (see the package documentation): only a receiver on another
	// host that is written to at two of its addresses can tell.
	StrictOrder bool
}

const (
	defaultBatchSize  = 64
	maxBatchSize      = 1024 // UIO_MAXIOV: the kernel's cap on one sendmmsg or recvmmsg
	maxDatagram       = 65535
	defaultMaxDelay   = 50 * time.Microsecond
	defaultQueueBytes = 256 << 10
	maxQueueBytes     = 64 << 20 // more than the largest batch, 1024 messages of 65535 B

	// defaultIdleGap is how long after the last send ended a WriteTo on an
	// empty queue counts as isolated and goes out at once, in the caller's
	// goroutine, as it would on a *net.UDPConn. A writer in a loop comes
	// back much sooner, and is batched; a request/response loop, much
	// later.
	defaultIdleGap = 5 * time.Microsecond
)

// settings is a Config resolved for one conn: every default filled in,
// what follows from it, and what the process allows (the kernel's gates,
// the operator's switch).
type settings struct {
	Config
	queueFactor    int           // how many times BatchSize datagrams the queue gathers with offload
	wideQueueBytes int           // a fan-out queue's arena (writepool.go): QueueBytes where the Config set it
	idleGap        time.Duration // defaultIdleGap; tests set their own (export_test.go)
	timerIdle      time.Duration // flushTimerIdle; tests set their own
	gates          kernelGates   // what offload the kernel may be asked for
	disabled       disabled      // what the operator turned off (BATCHCONN_DISABLE)
	noBatch        bool          // serve the conn one datagram at a time
	eagerRun       uint16        // eagerRun (writer.go); small, so that a conn stays in its size class
}

// runningKernelGates decides the gates for the running kernel, once per
// process: one uname call.
var runningKernelGates = sync.OnceValue(currentKernelGates)

func currentKernelGates() kernelGates { return gatesFor(kernelRelease()) }

func (c *Config) resolve() settings {
	var s settings
	if c != nil {
		s.Config = *c
	}
	if s.BatchSize <= 0 {
		s.BatchSize = defaultBatchSize
	}
	s.BatchSize = min(s.BatchSize, maxBatchSize)
	if s.ReadSlotSize <= 0 {
		s.ReadSlotSize = maxDatagram
	}
	s.ReadSlotSize = min(s.ReadSlotSize, maxDatagram)
	if s.MaxDelay <= 0 {
		s.MaxDelay = defaultMaxDelay
	}
	s.queueFactor = gsoQueueFactor
	s.QueueBytes = min(max(s.QueueBytes, maxDatagram), maxQueueBytes)
	s.wideQueueBytes = s.QueueBytes
	if c == nil || c.QueueBytes <= 0 {
		s.QueueBytes, s.wideQueueBytes = defaultQueueBytes, wideQueueBytes
	}
	s.idleGap, s.eagerRun, s.timerIdle = defaultIdleGap, eagerRun, flushTimerIdle
	s.gates = runningKernelGates()
	s.disabled = operatorDisabled()
	s.noBatch = s.disabled.noBatch()
	return s
}
