#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# then checks formatting, vets and runs every test (fuzz seed corpora included).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for tool in scrypt:scrypt tar:tar gzip:gzip bzip2:bzip2 xz:xz-utils zstd:zstd pigz:pigz pbzip2:pbzip2 openssl:openssl python3:python3-minimal; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool##*:}")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
	echo "installing: ${need_pkgs[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

go mod download

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -count=1 -timeout 25m ./...
