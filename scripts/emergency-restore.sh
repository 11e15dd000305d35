#!/usr/bin/env bash
# emergency-restore.sh BACKUP PASSFILE DIR recovers BACKUP into DIR with the
# format 4 procedure of doc/emergency-restore.md (the marked bash block, taken
# from the document), so that the demo, the bench and the tests run
# exactly what users are told to run: GNU tar, scrypt and the decompressor.
set -euo pipefail
doc=$(dirname "$0")/../doc/emergency-restore.md
procedure=$(sed -n '/<!-- emergency-v4:begin -->/,/<!-- emergency-v4:end -->/p' "$doc" | sed '1,2d;$d' | sed '$d')
if [ -z "$procedure" ]; then
	echo "emergency-restore.sh: no marked procedure in $doc" >&2
	exit 1
fi
backup=$(realpath "$1")
pass=$(head -n1 "$2")
mkdir -p "$3"
cd "$3"
BACKUP="$backup" PASS="$pass" bash -c "$procedure"
