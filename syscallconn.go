package batchconn

import (
	"errors"
	"syscall"
)

// errBehindRing is what a raw Read or Write on a batched conn returns.
var errBehindRing = errors.Join(errors.ErrUnsupported,
	errors.New("batchconn: reading or writing the socket directly would bypass the read ring and write queue; use the conn's methods, or Unwrap"))

// controlOnly is a syscall.RawConn that reaches the socket only to set or
// read options.
type controlOnly struct{ rc syscall.RawConn }

func (r controlOnly) Control(f func(fd uintptr)) error { return r.rc.Control(f) }
func (controlOnly) Read(func(fd uintptr) bool) error   { return errBehindRing }
func (controlOnly) Write(func(fd uintptr) bool) error  { return errBehindRing }
