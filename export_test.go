package batchconn

// b returns what serves a batched conn, for tests that look inside it;
// nil for a conn served one datagram at a time.
func (c *PacketConn) b() *batched {
	b, _ := c.impl.(*batched)
	return b
}
