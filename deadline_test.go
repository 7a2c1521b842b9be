package batchconn

import (
	"testing"
	"time"
)

// A conn whose calls all reach the poller (a query sent at once, its
// reply read straight into the caller's buffer) tests no deadline itself,
// and so makes no timer for one, however often the deadline is set. A
// round in which the writer was descheduled between its send and its
// clock reading looks like a loop and queues its next query (then the
// write deadline is tested, rightly): such rounds prove nothing and are
// not counted.
func TestDeadlinesOfAQueryMakeNoTimer(t *testing.T) {
	srv := echoServer(t)
	q, p := make([]byte, 40), make([]byte, 2048)
	counted := 0
	for round := 0; round < 50 && counted < 3; round++ {
		conn := exchange(t, kinds[1], srv, q, p).(*PacketConn)
		conn.SetDeadline(time.Now().Add(time.Minute))
		conn.Write(q)
		conn.Read(p)
		if s := conn.Stats(); s.FlushIdle == 2 && s.DatagramsRead == 2 {
			counted++
			if conn.b().r.deadline.timer != nil || conn.b().w.deadline.timer != nil {
				t.Fatal("a conn that read one reply at a time made a deadline timer")
			}
		}
		conn.Close()
	}
	if counted < 3 {
		t.Fatalf("only %d of 50 rounds sent both queries at once", counted)
	}
}

// A deadline tested while the ring holds datagrams gets a timer, which
// moving the deadline later leaves alone and Close stops.
func TestDeadlineTimerIsSetOnceAndStoppedByClose(t *testing.T) {
	conn, peer := New(listenLoopback(t), nil), listenLoopback(t)
	defer peer.Close()
	for range 8 {
		peer.WriteTo([]byte("x"), conn.LocalAddr())
	}
	p := make([]byte, 16)
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	// The first reads refill the ring, through the poller; once it holds
	// datagrams, the next read tests the deadline itself.
	read := func() {
		t.Helper()
		if _, _, err := conn.ReadFrom(p); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; !conn.b().r.waiting(); i++ {
		if i == 4 {
			t.Fatal("four reads of eight waiting datagrams left the ring empty")
		}
		read()
	}
	read()
	d := &conn.b().r.deadline
	d.mu.Lock()
	timer, fires, watched := d.timer, d.fires, d.watched
	d.mu.Unlock()
	if timer == nil || fires == 0 || !watched {
		t.Fatal("a read from the ring left the deadline without a timer")
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	read()
	d.mu.Lock()
	again := d.fires
	d.mu.Unlock()
	if again != fires {
		t.Fatalf("moving the deadline later set its timer again (due %d, then %d)", fires, again)
	}
	conn.Close()
	if d.fires != 0 || d.timer.Stop() {
		t.Fatal("Close left the deadline's timer running")
	}
}
