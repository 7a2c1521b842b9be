#!/usr/bin/env bash
# selftest.sh runs quic-go's own integration tests (integrationtests/self of
# the quic-go version the integration module requires) on batchconn: it
# copies quic-go's module source from the module cache to a scratch
# directory, points its go.mod at this checkout of batchconn, applies
# selftest.patch (newUDPConnLocalhost, the helper that makes the sockets the
# tests hand to quic.Listen, quic.Dial, quic.Transport and http3.Server,
# returns batchconn.New(conn, nil); quicproxy.Proxy keeps a raw
# *net.UDPConn), and runs go test on ./integrationtests/self.
#
#   integration/quicgo/selftest.sh                 # wrapped, -race
#   SELFTEST_PLAIN=1 integration/quicgo/selftest.sh  # unmodified copy
#   SELFTEST_RACE=0 ...                            # without -race
#   integration/quicgo/selftest.sh -run TestHandshake   # extra go test flags
#
# SELFTEST_DIR (default /tmp/batchconn-selftest) holds the copies
# (wrapped/ or plain/, recreated each run) and the log, go-test.log. Needs
# only the Go module proxy (quic-go's test dependencies). Not part of
# go test ./...: it is not a _test.go file.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)   # batchconn checkout
imod=$root/integration

ver=$(cd "$imod" && go list -m -f '{{.Version}}' github.com/quic-go/quic-go)
(cd "$imod" && go mod download github.com/quic-go/quic-go@"$ver")
src=$(go env GOMODCACHE)/github.com/quic-go/quic-go@$ver

kind=wrapped
[ "${SELFTEST_PLAIN:-0}" = 1 ] && kind=plain
base=${SELFTEST_DIR:-/tmp/batchconn-selftest}
dir=$base/$kind
rm -rf "$dir"
mkdir -p "$base"
cp -r "$src" "$dir"
chmod -R u+w "$dir"
cd "$dir"

if [ "$kind" = wrapped ]; then
	go mod edit -require github.com/batchconn/batchconn@v0.0.0 \
		-replace github.com/batchconn/batchconn="$root"
	patch -p1 --no-backup-if-mismatch < "$here/selftest.patch"
	go mod tidy
fi

flags=(-count=1 -timeout 40m -v)
[ "${SELFTEST_RACE:-1}" = 1 ] && flags+=(-race)

echo "quic-go $ver integrationtests/self, $kind, go test ${flags[*]} $*" >&2
start=$(date +%s)
rc=0
go test "${flags[@]}" "$@" ./integrationtests/self > "$dir/go-test.log" 2>&1 || rc=$?
end=$(date +%s)

log=$dir/go-test.log
echo "log: $log" >&2
echo "top-level: $(grep -c '^--- PASS' "$log" || true) passed, $(grep -c '^--- FAIL' "$log" || true) failed, $(grep -c '^--- SKIP' "$log" || true) skipped" >&2
grep -E '^(\s*)--- FAIL' "$log" >&2 || true
tail -n 3 "$log" >&2
echo "go test exit $rc after $((end - start)) s" >&2
exit $rc
