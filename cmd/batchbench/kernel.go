package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// udpQueue is what Linux's /proc/net/udp tells of one IPv4 UDP socket.
type udpQueue struct {
	queued uint64 // bytes waiting to be read
	drops  uint64 // datagrams dropped at its full queue so far
}

// udpQueues reads /proc/net/udp for the sockets bound to ports. ok is
// false where that is unknown (not Linux, a port not found).
func udpQueues(ports ...int) (qs []udpQueue, ok bool) {
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return nil, false
	}
	qs = make([]udpQueue, len(ports))
	found := make([]bool, len(ports))
	// sl local_address rem_address st tx_queue:rx_queue ... drops
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 13 {
			continue
		}
		for i, port := range ports {
			if found[i] || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				continue
			}
			_, rxq, cut := strings.Cut(f[4], ":")
			q, qerr := strconv.ParseUint(rxq, 16, 64)
			d, derr := strconv.ParseUint(f[len(f)-1], 10, 64)
			qs[i], found[i] = udpQueue{q, d}, cut && qerr == nil && derr == nil
		}
	}
	for _, f := range found {
		if !f {
			return nil, false
		}
	}
	return qs, true
}

// queued reports whether the kernel holds datagrams for any of ports.
func queued(ports ...int) bool {
	qs, _ := udpQueues(ports...)
	for _, q := range qs {
		if q.queued > 0 {
			return true
		}
	}
	return false
}

// kernelDrops sums the datagrams the kernel dropped at the queues of the
// sockets bound to ports.
func kernelDrops(ports ...int) (drops uint64, ok bool) {
	qs, ok := udpQueues(ports...)
	for _, q := range qs {
		drops += q.drops
	}
	return drops, ok
}

// rmemMax returns net.core.rmem_max, the most SetReadBuffer can get, or 0
// where that is unknown.
func rmemMax() int {
	data, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}
