package batchconn

import (
	"encoding/binary"
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
	rx := listenLoopback(b)
	defer rx.Close()
	rc, err := rx.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
	if serr != nil {
		b.Skipf("SO_TIMESTAMPNS: %v", serr)
	}
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
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil || len(msgs) == 0 || len(msgs[0].Data) < int(unsafe.Sizeof(unix.Timespec{})) {
				continue
			}
			ts := *(*unix.Timespec)(unsafe.Pointer(&msgs[0].Data[0]))
			sent := int64(binary.NativeEndian.Uint64(p))
			waits = append(waits, time.Duration(ts.Nano()-sent))
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
