package batchconn

import "sync/atomic"

// counters are the conn's statistics, updated once per system call, not
// per datagram.
type counters struct {
	datagramsRead    atomic.Uint64
	readCalls        atomic.Uint64
	datagramsWritten atomic.Uint64
	writeCalls       atomic.Uint64
	writeFailures    atomic.Uint64
	offloadFallbacks atomic.Uint64
	offloadSent      atomic.Uint64
	offloadReceived  atomic.Uint64
	receiveDrops     atomic.Uint64
	readDiscards     atomic.Uint64
	flushIdle        atomic.Uint64
	flushes          [causeClose + 1]atomic.Uint64
}

// Stats is a snapshot of a conn's counters since New.
type Stats struct {
	DatagramsRead uint64 // datagrams received from the kernel into the ring
	ReadCalls     uint64 // system calls that received them, failed ones included

	DatagramsWritten uint64 // datagrams the kernel accepted
	WriteCalls       uint64 // system calls that sent them, failed ones included
	WriteFailures    uint64 // queued datagrams the kernel refused, or Close dropped
	OffloadFallbacks uint64 // times the kernel refused segmentation offload, which then went off
	OffloadSent      uint64 // datagrams sent as segments of a larger message (GSO)
	OffloadReceived  uint64 // datagrams received coalesced with others (GRO)

	// ReceiveDrops is the kernel's count of datagrams it dropped because
	// the socket's receive queue was full, over the socket's whole life:
	// what the drops column of /proc/net/udp shows for the socket at the
	// moment Stats is called (SO_MEMINFO), and after Close as it stood
	// when the conn closed. With GRO on, the kernel counts a coalesced
	// buffer it drops once, however many datagrams it held.
	ReceiveDrops uint64
	// ReadDiscards counts received buffers discarded because the kernel
	// cut their control data short (MSG_CTRUNC) while GRO was on, so that
	// the datagrams in them could not be told apart. The control room
	// (256 bytes a message) holds every option a socket can turn on; a
	// non-zero count is a bug to report.
	ReadDiscards uint64

	// Why datagrams left: sent alone at once on an idle conn (Idle), or
	// as a queue that was full, whose oldest datagram waited MaxDelay, that a
	// ReadFrom sent before waiting, that Flush or a datagram plain had to
	// handle sent, or that Close sent.
	FlushIdle, FlushFull, FlushTimer, FlushRead, FlushExplicit, FlushClose uint64
}

// snapshot reads the counters.
func (s *counters) snapshot() Stats {
	return Stats{
		DatagramsRead:    s.datagramsRead.Load(),
		ReadCalls:        s.readCalls.Load(),
		DatagramsWritten: s.datagramsWritten.Load(),
		WriteCalls:       s.writeCalls.Load(),
		WriteFailures:    s.writeFailures.Load(),
		OffloadFallbacks: s.offloadFallbacks.Load(),
		OffloadSent:      s.offloadSent.Load(),
		OffloadReceived:  s.offloadReceived.Load(),
		ReceiveDrops:     s.receiveDrops.Load(),
		ReadDiscards:     s.readDiscards.Load(),
		FlushIdle:        s.flushIdle.Load(),
		FlushFull:        s.flushes[causeFull].Load(),
		FlushTimer:       s.flushes[causeTimer].Load(),
		FlushRead:        s.flushes[causeRead].Load(),
		FlushExplicit:    s.flushes[causeExplicit].Load(),
		FlushClose:       s.flushes[causeClose].Load(),
	}
}

// noteDrops records the kernel's drop count d, which only grows: a count
// read earlier and stored later must not hide a larger one.
func (s *counters) noteDrops(d uint64) {
	for {
		old := s.receiveDrops.Load()
		if d <= old || s.receiveDrops.CompareAndSwap(old, d) {
			return
		}
	}
}
