// Package quicgo runs github.com/quic-go/quic-go, and its http3 package,
// on batchconn.
//
// quic.Transport looks at the net.PacketConn it is given:
//   - SetReadBuffer and SetWriteBuffer, if present, raise the socket
//     buffers (batchconn has both, so quic-go still gets its 7 MB, capped
//     by net.core.rmem_max/wmem_max);
//   - SyscallConn, if present, sets the Don't Fragment bit, which path MTU
//     discovery needs. batchconn's SyscallConn reaches the socket for
//     options (its Read and Write refuse), so quic-go sets the bit and
//     discovers the path MTU, as on a raw socket;
//   - quic.OOBCapablePacketConn (SyscallConn, SetReadBuffer, ReadMsgUDP,
//     WriteMsgUDP), if present, makes quic-go take its out-of-band path:
//     it turns on IP_RECVTOS/IPV6_RECVTCLASS (and packet info on a
//     wildcard socket) through SyscallConn().Control, writes each packet
//     or GSO batch with WriteMsgUDP and control messages (ECN marking,
//     the source address, UDP_SEGMENT), and reads with ReadBatch where
//     the conn has it, else through x/net's ipv4.PacketConn over
//     SyscallConn. batchconn is one and has ReadBatch, so quic-go reads
//     through its ring (recvmmsg, with GRO) and writes through its queue
//     (sendmmsg; quic-go's segmented messages leave as segmented
//     messages, never merged), with GSO, ECN and packet info as on a raw
//     socket.
//
// TestNoBypass checks that surface and, in the conns' Stats, that
// quic-go's packets went through batchconn in batches; TestOOBPath, that
// quic-go uses GSO and validates ECN on batchconn as on a raw socket, and
// that a batchconn receiver gets its peer's segmented messages coalesced
// (GRO), which quic-go on a raw socket does not ask for;
// TestWildcardSource, that a server on 0.0.0.0 or [::] answers from the
// address each client dialed, by quic-go's own packet info.
package quicgo
