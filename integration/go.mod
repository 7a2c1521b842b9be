module github.com/batchconn/batchconn/integration

go 1.25.0

require (
	github.com/batchconn/batchconn v0.0.0
	github.com/miekg/dns v1.1.73
	github.com/pion/logging v0.2.4
	github.com/pion/turn/v4 v4.1.4
	github.com/quic-go/quic-go v0.61.0
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.57.0
	golang.org/x/sys v0.47.0
)

require (
	github.com/pion/dtls/v3 v3.0.7 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	github.com/pion/stun/v3 v3.0.1 // indirect
	github.com/pion/transport/v3 v3.0.8 // indirect
	github.com/pion/transport/v4 v4.0.1 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	github.com/wlynxg/anet v0.0.5 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)

replace github.com/batchconn/batchconn => ../
