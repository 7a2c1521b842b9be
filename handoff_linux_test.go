package batchconn

import (
	"testing"
	"time"
)

// Buffers handed between goroutines in the order the network sets. On
// plain the kernel reads and writes the caller's buffer inside sendto and
// recvfrom, unseen by the race detector; batchconn's copies into and out of
// its ring and queue must be unseen too, or every user of these patterns
// (pion/turn's allocation handler among them) gets a DATA RACE report under
// -race after wrapping. Without -race the tests only check the datagrams.

// A reader that reuses one buffer hands each datagram, buf[:n], to a
// decoder goroutine and reads on; the decoder's answer makes the peer send
// the next datagram, so the network orders the decoder's reads before the
// next datagram lands in buf.
func TestReaderHandingItsBufferToADecoderIsNoRace(t *testing.T) {
	const rounds = 50
	for _, k := range kinds[:3] {
		t.Run(k.name, func(t *testing.T) {
			a, b := diffCase{}.listen(t)
			conn := k.wrap(a)
			defer conn.Close()
			peer := newConn(b, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
			defer peer.Close()
			warmGRO(t, conn, peer) // every datagram through the ring's slots
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))

			decoded := make(chan []byte)
			next := make(chan byte)
			go func() { // the decoder
				defer close(next)
				for d := range decoded {
					next <- d[0] ^ d[len(d)-1]
				}
			}()
			go func() { // the peer: sends a datagram once the last was decoded
				p := make([]byte, 1000)
				for i := range rounds {
					p[0] = byte(i)
					peer.WriteTo(p, conn.LocalAddr())
					peer.Flush()
					if _, ok := <-next; !ok {
						return
					}
				}
			}()
			buf := make([]byte, 2048)
			for i := range rounds {
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					t.Fatal(err)
				}
				if buf[0] != byte(i) {
					t.Fatalf("datagram %d: got %d", i, buf[0])
				}
				decoded <- buf[:n]
			}
			close(decoded)
			for range next { // the decoder is done with buf
			}
		})
	}
}

// An encoder refills its one buffer once the peer has acknowledged the
// datagram WriteTo sent from it.
func TestWriterReusingItsBufferAfterAnAckIsNoRace(t *testing.T) {
	const rounds = 50
	for _, k := range kinds[:3] {
		t.Run(k.name, func(t *testing.T) {
			a, peer := diffCase{}.listen(t)
			conn := k.wrap(a)
			defer conn.Close()
			defer peer.Close()
			acked := make(chan struct{})
			go func() { // the peer acknowledges each datagram
				defer close(acked)
				p := make([]byte, 2048)
				peer.SetReadDeadline(time.Now().Add(10 * time.Second))
				for range rounds {
					if _, _, err := peer.ReadFrom(p); err != nil {
						return
					}
					acked <- struct{}{}
				}
			}()
			buf := make([]byte, 100)
			encoded := make(chan []byte)
			go func() { // the encoder
				defer close(encoded)
				for i := range rounds {
					buf[0] = byte(i) // after the last one's ack: the network ordered it
					encoded <- buf
					if _, ok := <-acked; !ok {
						return
					}
				}
			}()
			sent := 0
			for d := range encoded { // queued, so copied, on the queued kind
				if _, err := conn.WriteTo(d, peer.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				if f, ok := conn.(interface{ Flush() error }); ok {
					f.Flush()
				}
				sent++
			}
			if sent != rounds {
				t.Fatalf("%d of %d datagrams acknowledged", sent, rounds)
			}
		})
	}
}
