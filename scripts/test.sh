#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# then checks formatting, vets and runs every test (fuzz seed corpora included).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
# mkfs.btrfs and mkfs.xfs make the loop-mounted filesystems on which the
# reflink snapshots of incremental backups are tested (as root).
for tool in scrypt:scrypt tar:tar gzip:gzip bzip2:bzip2 xz:xz-utils zstd:zstd pigz:pigz pbzip2:pbzip2 openssl:openssl python3:python3-minimal \
	mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool##*:}")
done
# The GUI (cmd/pedos-manager, internal/gui) is Fyne over GLFW and OpenGL,
# built with cgo: a C compiler, pkg-config and the GL and X11 headers GLFW
# includes. Its smoke test runs the real program on Xvfb, rendering with
# mesa's software GL, and finds and closes the window with xdotool and
# xwininfo (x11-utils).
for pkg in gcc pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev \
	libxinerama-dev libxi-dev libxxf86vm-dev libgl1-mesa-dri xvfb xdotool x11-utils; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
	echo "installing: ${need_pkgs[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Every test tool is installed above, so none may be skipped as missing
# (the tests skip only where CI is unset).
export CI="${CI:-1}"

go mod download

# SeaweedFS, the S3 server the object storage tests run against
# (doc/object-storage.md). `go install` refuses its module (its go.mod has
# replace directives), so the module is downloaded, copied somewhere
# writable and built there: once, several minutes; the binary is cached.
weed_version=v0.0.0-20261109003541-7506e5f91cd6
weed_cache="${XDG_CACHE_HOME:-$HOME/.cache}/pedos"
export PEDOS_WEED="${PEDOS_WEED:-$weed_cache/weed-$weed_version}"
if [ ! -x "$PEDOS_WEED" ]; then
	echo "building the SeaweedFS server $weed_version (once; several minutes)"
	mkdir -p "$weed_cache"
	weed_mod=$(cd "$(mktemp -d)" && go mod download -json "github.com/seaweedfs/seaweedfs@$weed_version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	weed_src="$weed_cache/weed-src-$weed_version"
	rm -rf "$weed_src"
	cp -r "$weed_mod" "$weed_src"
	chmod -R u+w "$weed_src"
	(cd "$weed_src" && go build -o "$PEDOS_WEED.tmp" ./weed)
	mv "$PEDOS_WEED.tmp" "$PEDOS_WEED"
	rm -rf "$weed_src"
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -count=1 -timeout 25m ./...
# The GUI hands work between goroutines (the wizards' Enter, progress,
# listings): the race detector watches that it stays on the UI goroutine.
go test -race -count=1 -timeout 10m ./internal/gui
