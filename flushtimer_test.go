package batchconn

import (
	"fmt"
	"testing"
	"time"
)

func TestTimerSendsLoneQueuedDatagram(t *testing.T) {
	c, peer := queuedPair(t, Config{MaxDelay: time.Millisecond})
	c.WriteTo([]byte("lone"), peer.LocalAddr())
	readN(t, peer, 1)
	if s := c.Stats(); s.FlushTimer != 1 {
		t.Fatalf("Stats = %+v, want the timer to have sent it", s)
	}
}

// A conn whose queue goes quiet lets its flush timer go (a timerfd and a
// goroutine), as an idle plain socket holds none; the next queued datagram
// makes a new one, and leaves on time.
func TestQuietConnLetsItsTimerGo(t *testing.T) {
	c, peer := batchedPair(t, Config{MaxDelay: 200 * time.Microsecond}, hooks{idleGap: time.Hour, timerIdle: 20 * time.Millisecond})
	for round := range 3 {
		c.WriteTo([]byte(fmt.Sprint(round)), peer.LocalAddr())
		if got := readN(t, peer, 1); got[0] != fmt.Sprint(round) {
			t.Fatalf("round %d: got %q", round, got[0])
		}
		if c.b().w.timer.Load() == nil {
			t.Fatalf("round %d: no timer while the queue is in use", round)
		}
		deadline := time.Now().Add(5 * time.Second)
		for c.b().w.timer.Load() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the timer is still there 5s after the queue went quiet", round)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if s := c.Stats(); s.FlushTimer != 3 {
		t.Fatalf("Stats = %+v: want each datagram sent by the timer", s)
	}
}
