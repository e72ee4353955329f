#!/usr/bin/env bash
# Regenerates server/gen from proto/ (the generated code is committed, so
# building and CI need none of this). Needs Debian's protobuf-compiler and
# the two plugins, from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "install protoc: apt-get install protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
GOBIN=$bin go install connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1
PATH=$bin:$PATH protoc -I proto \
	--go_out=server/gen --go_opt=module=github.com/gospann/spann/server/gen \
	--connect-go_out=server/gen --connect-go_opt=module=github.com/gospann/spann/server/gen \
	proto/spann/v1/spann.proto
