package batchconn

import (
	"errors"
	"syscall"
)

// errBehindRing is what a raw Read or Write on a batched conn returns:
// x/net's ipv4 and ipv6 PacketConn read and write that way.
var errBehindRing error = behindRing{}

type behindRing struct{}

func (behindRing) Error() string {
	return "batchconn: the socket is read and written through the conn (ReadMsgUDP, WriteMsgUDP, ReadBatch, WriteBatch), not its raw descriptor"
}

func (behindRing) Unwrap() error { return errors.ErrUnsupported }

// controlOnly is a syscall.RawConn that reaches the socket only to set or
// read options, through the receiving half, which watches what the
// caller does to the options it uses itself.
type controlOnly struct{ io rxIO }

func (r controlOnly) Control(f func(fd uintptr)) error { return r.io.control(f) }
func (controlOnly) Read(func(fd uintptr) bool) error   { return errBehindRing }
func (controlOnly) Write(func(fd uintptr) bool) error  { return errBehindRing }

var _ syscall.RawConn = controlOnly{}
