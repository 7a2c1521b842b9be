package batchconn

import (
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// ask sends a datagram from client to to, and returns the address the
// reply came from.
func ask(t *testing.T, client *net.UDPConn, to *net.UDPAddr) string {
	t.Helper()
	if _, err := client.WriteTo([]byte("query"), to); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, from, err := client.ReadFromUDP(make([]byte, 64))
	if err != nil {
		t.Fatalf("no reply to a query sent to %v: %v", to, err)
	}
	return from.IP.String()
}

// A server on a wildcard address answers each query from the address the
// query was sent to, on a host with several (all of 127.0.0.0/8 are
// this host's): so a client that checks the reply's source, as DNS
// clients do, accepts it. Plain, and batchconn with KernelChoosesSource,
// answer from the kernel's choice, 127.0.0.1.
func TestRepliesLeaveFromTheAddressThePeerWroteTo(t *testing.T) {
	for _, server := range []struct{ network, addr string }{{"udp4", "0.0.0.0:0"}, {"udp", "[::]:0"}} {
		for _, k := range []kind{kinds[0], kinds[1], kinds[2],
			{"kernel-chooses", func(uc *net.UDPConn) net.PacketConn { return New(uc, &Config{KernelChoosesSource: true}) }},
		} {
			t.Run(server.network+"/"+k.name, func(t *testing.T) {
				la, _ := net.ResolveUDPAddr(server.network, server.addr)
				uc, err := net.ListenUDP(server.network, la)
				if err != nil {
					t.Fatal(err)
				}
				conn := k.wrap(uc)
				defer conn.Close()
				echoOn(conn)
				client, _ := diffCase{}.listen(t) // on 127.0.0.1
				defer client.Close()
				port := uc.LocalAddr().(*net.UDPAddr).Port
				var got []string
				for _, to := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.1"} {
					got = append(got, ask(t, client, &net.UDPAddr{IP: net.ParseIP(to), Port: port}))
				}
				want := "[127.0.0.2 127.0.0.3 127.0.0.2 127.0.0.1]"
				if k.name == "plain" || k.name == "kernel-chooses" {
					want = "[127.0.0.1 127.0.0.1 127.0.0.1 127.0.0.1]"
				}
				if fmt.Sprint(got) != want {
					t.Fatalf("replies came from %v, want %s", got, want)
				}
			})
		}
	}
}

// The same in IPv6, on a loopback with two more addresses in a namespace
// of the test's own.
func TestIPv6RepliesLeaveFromTheAddressThePeerWroteTo(t *testing.T) {
	ns := newNetns(t)
	for _, a := range []string{"fd00::2/128", "fd00::3/128"} {
		ns.ip(t, "-6", "addr", "add", a, "dev", "lo")
	}
	conn := New(ns.listen(t, "udp6", "[::]:0"), nil)
	defer conn.Close()
	echoOn(conn)
	client := ns.listen(t, "udp6", "[::1]:0")
	port := conn.LocalAddr().(*net.UDPAddr).Port
	var got []string
	for _, to := range []string{"fd00::2", "fd00::3", "::1"} {
		got = append(got, ask(t, client, &net.UDPAddr{IP: net.ParseIP(to), Port: port}))
	}
	if want := "[fd00::2 fd00::3 ::1]"; fmt.Sprint(got) != want {
		t.Fatalf("replies came from %v, want %s", got, want)
	}
}

// A server on a wildcard address that joined a multicast group, through
// x/net's ipv4 option helpers, answers a query sent to the group from the
// receiving interface's own address: a group address is no source.
func TestMulticastQueryIsAnsweredFromTheInterfacesAddress(t *testing.T) {
	ns := newNetns(t)
	ns.ip(t, "link", "set", "lo", "multicast", "on")
	ns.ip(t, "route", "add", "224.0.0.0/4", "dev", "lo")
	group := net.IPv4(239, 1, 2, 3)
	for _, k := range []kind{kinds[0], kinds[1], kinds[2]} {
		t.Run(k.name, func(t *testing.T) {
			uc := ns.listen(t, "udp4", "0.0.0.0:0")
			conn := k.wrap(uc)
			defer conn.Close()
			// Joined through x/net's option helpers, as mDNS and SSDP
			// code does: they take a conn with SyscallConn and ReadMsgUDP.
			p := ipv4.NewPacketConn(conn)
			lo := &net.Interface{Index: 1, Name: "lo"} // lo is 1 in every namespace
			if err := p.JoinGroup(lo, &net.UDPAddr{IP: group}); err != nil {
				t.Fatalf("JoinGroup(%v): %v", group, err)
			}
			if err := p.SetTOS(0x28); err != nil {
				t.Fatalf("SetTOS: %v", err)
			}
			if tos, err := p.TOS(); err != nil || tos != 0x28 {
				t.Fatalf("TOS = %#x, %v; want 0x28 set on the socket", tos, err)
			}
			echoOn(conn)
			client := ns.listen(t, "udp4", "127.0.0.1:0")
			port := uc.LocalAddr().(*net.UDPAddr).Port
			if from := ask(t, client, &net.UDPAddr{IP: group, Port: port}); from != "127.0.0.1" {
				t.Fatalf("the answer to a query sent to %v came from %s, want 127.0.0.1", group, from)
			}
		})
	}
}
