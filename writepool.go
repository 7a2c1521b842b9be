package batchconn

import "sync"

// A writeBlock is the room for a queue: the arena its payloads are copied
// into, its entries and the system call's headers. A conn takes one from a
// process-wide pool when a datagram enters its empty queue and gives it
// back when the queue has gone out, so that a conn whose writes go out at
// once, or that is idle, holds none.
type writeBlock struct {
	arena []byte
	msgs  []txMsg
	hdrs  txHeader
	fan   fanout
}

// writePools holds a pool of blocks for each shape of queue.
var writePools sync.Map // writeShape -> *sync.Pool

type writeShape struct{ queueBytes, batch, factor int }

// take gives the empty queue a block; w.mu is held.
func (w *writer) take(cfg *settings) {
	if w.pool == nil {
		shape := writeShape{cfg.QueueBytes, cfg.BatchSize, cfg.queueFactor}
		p, ok := writePools.Load(shape)
		if !ok {
			p, _ = writePools.LoadOrStore(shape, &sync.Pool{New: func() any {
				b := &writeBlock{
					arena: make([]byte, shape.queueBytes),
					msgs:  make([]txMsg, 0, shape.batch*shape.factor),
				}
				b.hdrs.make(shape.batch, shape.factor)
				return b
			}})
		}
		w.pool = p.(*sync.Pool)
	}
	w.blk = w.pool.Get().(*writeBlock)
	w.blk.fan.reset()
	w.msgs = w.blk.msgs[:0]
}
