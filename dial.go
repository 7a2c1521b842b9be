package batchconn

import "net"

// Dial connects a UDP socket to address on network ("udp", "udp4" or
// "udp6") as net.Dial does, and wraps it with New and cfg. It is the
// client's one call, as net.ListenPacket and New are the server's two:
//
//	conn, err := batchconn.Dial("udp", "192.0.2.1:5000", nil)
//
// The conn is connected, as the socket net.Dial returns: Write sends a
// datagram to the peer as WriteTo would (at once when the conn is idle,
// else through the queue), Read returns the peer's datagrams, and
// datagrams from any other address are not received. Close it to send
// what is queued.
//
// Dial fails with net.Dial's error where net.Dial fails. Any other network
// fails at once with a *net.OpError wrapping net.UnknownNetworkError, as
// net.DialUDP does, and nothing is dialed. For a context, a local address
// or other net.Dialer options, dial with a net.Dialer and pass its result,
// asserted to *net.UDPConn, to New.
func Dial(network, address string, cfg *Config) (*PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return New(c.(*net.UDPConn), cfg), nil // net.Dial returns a *net.UDPConn for these networks
}
