// Package pionturn runs a github.com/pion/turn server, and its clients, on
// batchconn.
//
// Pion's read loops (the server's listener, each allocation's relay
// socket, each client's socket) end on the first read error of any kind,
// silently: a spurious error from batchconn stalls the traffic, which the
// test sees as datagrams that never arrive.
package pionturn
