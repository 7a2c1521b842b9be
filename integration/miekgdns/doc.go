// Package miekgdns runs a github.com/miekg/dns server on batchconn.
//
// dns.Server with a PacketConn that is not a *net.UDPConn reads through
// ReadFrom and answers through WriteTo. It relies on three things that
// batchconn must do as plain does:
//   - it sets a read deadline (Server.ReadTimeout, 2s by default) before
//     every read, and a read that fails with a timeout (a net.Error whose
//     Temporary() is true) just goes round again;
//   - any other read error ends the server (ActivateAndServe returns it);
//   - each query is answered from a goroutine of its own, so WriteTo is
//     called concurrently, and concurrently with the blocked ReadFrom.
package miekgdns
