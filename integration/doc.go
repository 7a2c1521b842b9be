// Package integration holds no code of its own: its subpackages run
// third-party UDP libraries (github.com/miekg/dns, github.com/pion/turn,
// github.com/quic-go/quic-go) on a batchconn-wrapped *net.UDPConn and on a
// plain one, and check that both move the same traffic, byte for byte.
//
// It is a module of its own so that batchconn itself depends on nothing
// but golang.org/x. Run it with
//
//	cd integration && go test -race ./...
package integration
