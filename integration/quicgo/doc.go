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
//   - quic.OOBCapablePacketConn (SyscallConn, ReadMsgUDP, WriteMsgUDP,
//     SetReadBuffer), if present, makes quic-go read and write the socket
//     itself, with recvmmsg, GSO and ECN: batchconn must not satisfy it,
//     or quic-go would bypass it. It has no WriteMsgUDP, so quic-go moves
//     one packet per ReadFrom and WriteTo, and batchconn batches them.
package quicgo
