package batchconn_test

import (
	"fmt"
	"log"
	"net"
	"time"

	"github.com/batchconn/batchconn"
	"golang.org/x/net/ipv4"
)

// A server wraps its socket and runs its usual loop, unchanged: replies
// written while more requests wait in the ring leave together.
func Example_server() {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	conn := batchconn.New(pc, nil)
	defer conn.Close()

	go echo(conn)

	client, err := net.DialUDP("udp", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ask(client, "hello")
	// Output: hello <nil>
}

// New wraps a socket the program has opened. From then on the program
// uses the conn, a net.PacketConn, where it used the socket.
func ExampleNew() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	conn := batchconn.New(pc, nil) // nil: the defaults
	defer conn.Close()             // sends what is queued, then closes pc

	// A datagram to itself. WriteTo may queue it; ReadFrom sends the queue
	// before it waits for the network.
	conn.WriteTo([]byte("hello"), conn.LocalAddr())
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 64)
	n, from, err := conn.ReadFrom(p)
	fmt.Println(string(p[:n]), from.String() == conn.LocalAddr().String(), err)
	// Output: hello true <nil>
}

// A client of one server dials it and uses the conn as a net.Conn.
func ExampleDial() {
	srv := listenLoopback() // a UDP echo server
	defer srv.Close()
	go echo(srv)

	conn, err := batchconn.Dial("udp", srv.LocalAddr().String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	conn.Write([]byte("ping"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 64)
	n, err := conn.Read(p)
	fmt.Println(string(p[:n]), err)
	// Output: ping <nil>
}

// echo is an ordinary net.PacketConn server loop.
func echo(conn net.PacketConn) {
	p := make([]byte, 65535)
	for {
		n, from, err := conn.ReadFrom(p)
		if err != nil {
			return // closed
		}
		conn.WriteTo(p[:n], from)
	}
}

// ask sends a request on a client's conn and prints the reply.
func ask(conn net.Conn, request string) {
	conn.Write([]byte(request))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 64)
	n, err := conn.Read(p)
	fmt.Println(string(p[:n]), err)
}

// listenLoopback opens a UDP socket on the loopback address, as a program
// opens its own.
func listenLoopback() *net.UDPConn {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	return pc
}

// A client that sends a burst wraps its socket the same way; Close sends
// what is still queued before it closes the socket.
func Example_client() {
	sink := listenLoopback() // where the datagrams go
	defer sink.Close()

	conn := batchconn.New(listenLoopback(), nil)
	for i := range 10 {
		conn.WriteTo([]byte{byte(i)}, sink.LocalAddr())
	}
	if err := conn.Close(); err != nil {
		log.Fatal(err)
	}

	p := make([]byte, 64)
	got := 0
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got < 10 {
		if _, _, err := sink.ReadFrom(p); err != nil {
			log.Fatal(err)
		}
		got++
	}
	fmt.Println("received", got)
	// Output: received 10
}

// Flush sends the queue now and reports a datagram the kernel refused since
// the last Flush. Call it before a pause in which nothing else will write
// or read, when the peer must see the datagrams before it.
func ExamplePacketConn_Flush() {
	sink := listenLoopback() // where the datagrams go
	defer sink.Close()
	conn := batchconn.New(listenLoopback(), nil)
	defer conn.Close()

	for i := range 3 {
		conn.WriteTo([]byte{byte(i)}, sink.LocalAddr())
	}
	if err := conn.Flush(); err != nil {
		log.Printf("a datagram was refused: %v", err)
	}
	fmt.Println(conn.Stats().DatagramsWritten)
	// Output: 3
}

// Stats tells how many datagrams each system call moved.
func ExamplePacketConn_Stats() {
	sink := listenLoopback() // where the datagrams go
	defer sink.Close()
	conn := batchconn.New(listenLoopback(), nil)
	for range 1000 {
		conn.WriteTo(make([]byte, 64), sink.LocalAddr())
	}
	conn.Close()

	s := conn.Stats()
	fmt.Println(s.DatagramsWritten, s.WriteFailures)
	if s.WriteCalls > 0 {
		log.Printf("%.1f datagrams per system call", float64(s.DatagramsWritten)/float64(s.WriteCalls))
	}
	// Output: 1000 0
}

// A client that dials its socket itself (to set a local address or a
// context with a net.Dialer, say) wraps the result with New. net.Dial
// returns a net.Conn, which New does not take: for a UDP network it holds
// a *net.UDPConn, to be asserted. net.DialUDP returns one directly.
func Example_dialThenWrap() {
	srv := listenLoopback() // a UDP echo server
	defer srv.Close()
	go echo(srv)

	c, err := net.Dial("udp", srv.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	conn := batchconn.New(c.(*net.UDPConn), nil)
	defer conn.Close()
	ask(conn, "ping") // conn.Write, then conn.Read
	// Output: ping <nil>
}

// A multicast receiver joins its group on the socket, then wraps it: the
// membership belongs to the socket and holds through the conn, which
// reads the group's datagrams and answers each sender at its own address.
// net.ListenMulticastUDP joins for you. To join more groups, or set other
// multicast options, use golang.org/x/net/ipv4 on the conn itself:
// ipv4.NewPacketConn(conn).JoinGroup(ifi, group) works on it as on the
// *net.UDPConn.
//
// This example has no Output line, so go test compiles it but does not run
// it: it needs an interface that does multicast. Linux's loopback device
// does not (`ip link show lo` lists no MULTICAST flag), and another
// interface would put the test's datagrams on its network.
func Example_multicast() {
	group := &net.UDPAddr{IP: net.IPv4(239, 255, 0, 42), Port: 9999}
	pc, err := net.ListenMulticastUDP("udp4", nil, group) // nil: the default multicast interface
	if err != nil {
		log.Fatal(err)
	}
	conn := batchconn.New(pc, nil)
	defer conn.Close()
	go func() {
		p := make([]byte, 1500)
		for {
			_, from, err := conn.ReadFrom(p)
			if err != nil {
				return // closed
			}
			conn.WriteTo([]byte("here"), from)
		}
	}()

	// Anyone may ask the group; each member answers from its own address.
	asker, err := net.ListenUDP("udp4", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer asker.Close()
	asker.WriteTo([]byte("who is there?"), group)
	asker.SetReadDeadline(time.Now().Add(time.Second))
	p := make([]byte, 64)
	n, from, err := asker.ReadFrom(p)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s from %v\n", p[:n], from) // a member's unicast address, not the group's
}

// A server on a wildcard address reads each query's destination, as DNS
// servers do, with x/net's control message helpers on the conn: they set
// the option through SyscallConn, and ReadMsgUDP returns the packet info
// with each datagram.
func ExamplePacketConn_ReadMsgUDP() {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		log.Fatal(err)
	}
	conn := batchconn.New(pc, nil)
	defer conn.Close()
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst, true); err != nil {
		log.Fatal(err)
	}

	client, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pc.LocalAddr().(*net.UDPAddr).Port})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	client.Write([]byte("query"))

	p, oob := make([]byte, 512), ipv4.NewControlMessage(ipv4.FlagDst)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := conn.ReadMsgUDP(p, oob)
	if err != nil {
		log.Fatal(err)
	}
	var cm ipv4.ControlMessage
	if err := cm.Parse(oob[:oobn]); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, sent to %v\n", p[:n], cm.Dst)
	// Output: query, sent to 127.0.0.1
}
