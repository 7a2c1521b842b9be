package batchconn

import "sync"

// A writeBlock is the room for a queue: the arena its payloads are copied
// into, its entries and the system call's headers. A conn takes one from a
// process-wide pool when a datagram enters its empty queue and gives it
// back when the queue has gone out, so that a conn whose writes go out at
// once, or that is idle, holds none.
//
// A queue grouped by destination (fanout.go) that fills the default
// QueueBytes with datagrams to several destinations makes runs of what
// each destination's share of it holds: 13 datagrams of 1200 B for 16
// peers in 256 KiB. Such a conn's next queue takes a wide block, of
// wideQueueBytes, which the datagram limit (8 x BatchSize) fills with 32
// for each (batchbench fanout shows what the wider runs gain). A conn
// that sends to one destination, or that set QueueBytes, keeps its bound.
type writeBlock struct {
	arena []byte
	msgs  []txMsg
	hdrs  txHeader
	fan   fanout
	home  *sync.Pool // the pool it goes back to
}

// wideQueueBytes is the arena of a fan-out queue, with QueueBytes left to
// its default.
const wideQueueBytes = 1 << 20

// writePools holds a pool of blocks for each shape of queue.
var writePools sync.Map // writeShape -> *sync.Pool

type writeShape struct{ queueBytes, batch, factor int }

// take gives the empty queue a block; w.mu is held.
func (w *writer) take(cfg *settings) {
	shape := writeShape{cfg.QueueBytes, cfg.BatchSize, cfg.queueFactor}
	if w.wide {
		shape.queueBytes = cfg.wideQueueBytes
	}
	p, ok := writePools.Load(shape)
	if !ok {
		// Made whole, then published: a pool another conn finds has New.
		pool := &sync.Pool{}
		pool.New = func() any {
			b := &writeBlock{
				arena: make([]byte, shape.queueBytes),
				msgs:  make([]txMsg, 0, shape.batch*shape.factor),
				home:  pool,
			}
			b.hdrs.make(shape.batch, shape.factor)
			b.hdrs.arena = b.arena
			return b
		}
		p, _ = writePools.LoadOrStore(shape, pool)
	}
	w.blk = p.(*sync.Pool).Get().(*writeBlock)
	w.blk.fan.reset()
	w.msgs = w.blk.msgs[:0]
}

// widen decides, as a grouped queue is sent, whether the next one takes a
// wide block: it does when this one held datagrams to several
// destinations and filled most of a default arena. w.mu is held.
func (w *writer) widen(cfg *settings) {
	w.wide = w.grouped && cfg.wideQueueBytes > cfg.QueueBytes &&
		len(w.blk.fan.groups) > 1 && w.used >= cfg.QueueBytes*3/4
}
