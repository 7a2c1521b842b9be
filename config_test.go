package batchconn

import (
	"math"
	"testing"
	"time"
)

func TestNegativeConfigBehavesAsDefaults(t *testing.T) {
	cfg := negativeConfig
	got, want := cfg.resolve(), (*Config)(nil).resolve()
	if got != want {
		t.Fatalf("Config%+v resolves to %+v, want the defaults %+v", negativeConfig, got, want)
	}
	if zero := (&Config{}).resolve(); zero != want {
		t.Fatalf("Config{} resolves to %+v, want the defaults %+v", zero, want)
	}
	// Too large is lowered to the limits, too small a queue raised.
	huge := (&Config{BatchSize: 1 << 30, ReadSlotSize: 1 << 30, QueueBytes: 1}).resolve()
	if huge.BatchSize != maxBatchSize || huge.ReadSlotSize != maxDatagram || huge.QueueBytes != maxDatagram {
		t.Fatalf("out-of-range Config resolves to %+v", huge)
	}
	if q := (&Config{QueueBytes: math.MaxInt}).resolve().QueueBytes; q != maxQueueBytes {
		t.Fatalf("Config{QueueBytes: MaxInt} resolves to a %d B queue, want %d", q, maxQueueBytes)
	}
	// A conn with the largest queue allocates it and works.
	{
		uc, peer := diffCase{}.listen(t)
		c := newConn(uc, &Config{QueueBytes: math.MaxInt}, hooks{idleGap: time.Hour})
		if _, err := c.WriteTo([]byte("big queue"), peer.LocalAddr()); err != nil {
			t.Fatalf("WriteTo with QueueBytes MaxInt: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close with QueueBytes MaxInt: %v", err)
		}
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "big queue" {
			t.Fatalf("peer read %q, %v; want the datagram", buf[:n], err)
		}
		peer.Close()
	}
	uc, peer := diffCase{}.listen(t)
	defer peer.Close()
	c := New(uc, &cfg)
	defer c.Close()
	if c.b().s.cfg != want {
		t.Fatalf("New with negative Config holds %+v, want %+v", c.b().s.cfg, want)
	}
	// The whole differential table on plain and on the negative Config,
	// but for the one case whose outcome hangs on a half-second window, which
	// TestBehavesLikeUDPConn runs already.
	for _, dc := range diffCases {
		if dc.name == "ReadDeadlineMovedLaterWhileBlocked" {
			continue
		}
		t.Run(dc.name, func(t *testing.T) {
			runDiffKinds(t, dc, []kind{hostileKinds[0], hostileKinds[len(hostileKinds)-1]})
		})
	}
}

// The seams tests set reach the resolved settings.
func TestResolveTakesHooksAndDerivesTheQueue(t *testing.T) {
	s := (&Config{}).resolveWith(hooks{idleGap: time.Hour, timerIdle: time.Minute, kernel: "4.19.0", noBatch: true})
	if s.idleGap != time.Hour || s.timerIdle != time.Minute || !s.noBatch {
		t.Errorf("hooks not taken: idleGap %v timerIdle %v noBatch %v", s.idleGap, s.timerIdle, s.noBatch)
	}
	if s.gates != gatesFor("4.19.0") {
		t.Errorf("gates %+v, want those of 4.19.0, %+v", s.gates, gatesFor("4.19.0"))
	}
	d := (*Config)(nil).resolve()
	if d.idleGap != defaultIdleGap || d.timerIdle != flushTimerIdle || d.queueFactor != gsoQueueFactor || d.QueueBytes != defaultQueueBytes {
		t.Errorf("defaults: %+v", d)
	}
}
