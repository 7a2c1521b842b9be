package batchconn

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkQueueWaitUnderContention: how long a datagram waits between
// its WriteTo and its arrival at the receiving socket while every CPU the
// process has is busy. The writer sends bursts of three datagrams every
// 200µs: the first leaves at once, the other two queue for the flush
// timer (MaxDelay 50µs). The receiving socket stamps each datagram as the
// kernel queues it (SO_TIMESTAMPNS), so that the receiver's own
// scheduling does not count. Busy goroutines, as many as GOMAXPROCS, spin
// beside the writer. Reported: p50, p99 and the longest wait, in µs.
func BenchmarkQueueWaitUnderContention(b *testing.B) {
	for _, k := range benchKinds {
		for _, busy := range []string{"idle", "busy"} {
			b.Run(k.name+"/"+busy, func(b *testing.B) { benchQueueWait(b, k, busy == "busy") })
		}
	}
}

func benchQueueWait(b *testing.B, k kind, busy bool) {
	rx := stampedReceiver(b)
	defer rx.Close()
	rx.SetReadBuffer(4 << 20)
	conn := k.wrap(listenLoopback(b))
	defer conn.Close()
	dst := rx.LocalAddr()

	var waits []time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the receiver: arrival stamps minus send stamps
		defer wg.Done()
		p, oob := make([]byte, 64), make([]byte, 128)
		for {
			n, oobn, _, _, err := rx.ReadMsgUDP(p, oob)
			if err != nil {
				return
			}
			if n < 8 {
				continue
			}
			arrived, ok := arrival(oob[:oobn])
			if !ok {
				continue
			}
			sent := int64(binary.NativeEndian.Uint64(p))
			waits = append(waits, time.Duration(arrived-sent))
		}
	}()
	var stop atomic.Bool
	if busy {
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				x := 0
				for !stop.Load() {
					x++
				}
				_ = x
			}()
		}
	}
	p := make([]byte, 64)
	b.ResetTimer()
	for i := range b.N {
		binary.NativeEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		if _, err := conn.WriteTo(p, dst); err != nil {
			b.Fatal(err)
		}
		if i%3 == 2 {
			for t := time.Now(); time.Since(t) < 200*time.Microsecond; {
			}
		}
	}
	b.StopTimer()
	stop.Store(true)
	time.Sleep(100 * time.Millisecond) // the last burst, however late
	rx.Close()
	wg.Wait()
	if len(waits) == 0 {
		b.Fatal("nothing arrived")
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	at := func(q float64) float64 { return float64(waits[int(q*float64(len(waits)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(at(1), "max-µs")
	b.ReportMetric(float64(b.N-len(waits)), "lost")
}

// stampedReceiver is a plain socket on loopback whose kernel stamps each
// datagram as it queues it (SO_TIMESTAMPNS).
func stampedReceiver(b *testing.B) *net.UDPConn {
	rx := listenLoopback(b)
	rc, err := rx.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
	if serr != nil {
		rx.Close()
		b.Skipf("SO_TIMESTAMPNS: %v", serr)
	}
	return rx
}

// arrival is the kernel's stamp in a received datagram's control data, in
// Unix nanoseconds.
func arrival(oob []byte) (int64, bool) {
	data := cmsgData(oob, wordSize, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS)
	if len(data) < int(unsafe.Sizeof(unix.Timespec{})) {
		return 0, false
	}
	return (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano(), true
}

// BenchmarkLoneDatagramAlternating: how long a lone datagram takes from
// WriteTo to the receiving socket's queue (SO_TIMESTAMPNS), from a writer
// that pauses lonePause after each one arrived, on plain and batchconn in
// short alternating blocks within one run (as BenchmarkPingPongAlternating):
// each kind's p50 and p99, and batchconn's over plain's. Such a writer's
// datagrams should leave at once.
func BenchmarkLoneDatagramAlternating(b *testing.B) {
	b.Run("64B", func(b *testing.B) {
		rx := stampedReceiver(b)
		defer rx.Close()
		rx.SetReadDeadline(time.Now().Add(time.Minute))
		var conns []net.PacketConn
		for _, k := range benchKinds {
			c := k.wrap(listenLoopback(b))
			defer c.Close()
			conns = append(conns, c)
		}
		dst := rx.LocalAddr()
		p, q, oob := make([]byte, 64), make([]byte, 2048), make([]byte, 128)
		var seq uint64
		alternate(b, 100, 100, func(k int) (time.Duration, error) {
			// Spun, not slept: where the process is otherwise idle, Go's
			// sleeps shorter than a millisecond last a millisecond.
			for t := time.Now(); time.Since(t) < lonePause; {
			}
			seq++
			binary.NativeEndian.PutUint64(p, seq)
			sent := time.Now()
			if _, err := conns[k].WriteTo(p, dst); err != nil {
				return 0, err
			}
			n, oobn, _, _, err := rx.ReadMsgUDPAddrPort(q, oob)
			if err != nil {
				return 0, err
			}
			arrived, ok := arrival(oob[:oobn])
			if n != len(p) || binary.NativeEndian.Uint64(q) != seq || !ok {
				return 0, fmt.Errorf("datagram %d: got %d bytes, number %d, stamped %v", seq, n, binary.NativeEndian.Uint64(q), ok)
			}
			return time.Duration(arrived - sent.UnixNano()), nil
		})
	})
}

// lonePause is the writer's pause between lone datagrams: longer than the
// idle gap after which a WriteTo to an empty queue goes at once.
const lonePause = 50 * time.Microsecond
