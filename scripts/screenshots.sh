#!/usr/bin/env bash
# Regenerates doc/screenshots/*.png: the VM Manager's windows, rendered by
# Fyne's test driver (no X server needed) on a demo host.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -run '^TestScreenshots$' ./internal/gui -args -update
ls doc/screenshots
