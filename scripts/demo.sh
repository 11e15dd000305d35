#!/usr/bin/env bash
# Self-contained demo: builds the tools, creates a demo PedOS host, shows it
# with the admin tools, backs it up with qvm-backup, verifies the archive,
# migrates it to a second host (another dom0 user) with qvm-backup-restore,
# and recovers a VM volume and the dom0 home with nothing but GNU tar,
# scrypt and gzip (doc/emergency-restore.md).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v scrypt >/dev/null || { apt-get update -qq && apt-get install -y -qq scrypt >/dev/null; }

work=$(mktemp -d /tmp/pedos-demo.XXXXXX)
echo "demo directory: $work"
mkdir -p "$work/bin" "$work/backups"
# the command-line tools: pedos-manager, the GUI, needs cgo and X headers
go build -o "$work/bin/" $(go list ./cmd/... | grep -v /pedos-manager$)
export PATH=$work/bin:$PATH PEDOS_ROOT=$work/host
echo 'demo passphrase' > "$work/pass"   # a real user types it at the prompt
chmod 600 "$work/pass"

run() { echo; echo "\$ $*"; "$@"; }

run pedos-host demo --user user --home "$work/home/user"
run qvm-start work
run qvm-ls
run qvm-prefs work netvm
run qvm-volume info work:private
run qvm-backup -y --progress lines -p "$work/pass" "$work/backups"
backup=$(ls "$work"/backups/qubes-backup-*)
run tar -itvf "$backup"
run qvm-backup-restore --verify-only --progress none -p "$work/pass" "$backup"
run qvm-prefs work backup_timestamp

echo
echo "migration: restore the backup onto a second host, whose dom0 user is alice:"
run env PEDOS_ROOT="$work/host-b" pedos-host init --user alice --home "$work/home/alice"
mkdir -p "$work/home/alice"
run env PEDOS_ROOT="$work/host-b" qvm-backup-restore -y --ignore-username-mismatch --progress lines -p "$work/pass" "$backup"
run env PEDOS_ROOT="$work/host-b" qvm-ls
run env PEDOS_ROOT="$work/host-b" qvm-prefs work netvm
qvm-volume export work:private "$work/a-private.img"
PEDOS_ROOT=$work/host-b qvm-volume export work:private "$work/b-private.img"
cmp "$work/a-private.img" "$work/b-private.img"
diff -r "$work/home/user" "$work/home/alice"/home-restore-*
echo "work's private volume and the dom0 home arrived identical on the second host"

echo
echo "emergency recovery with standard tools only (doc/emergency-restore.md):"
scripts/emergency-restore.sh "$backup" "$work/pass" "$work/emergency"
qid=$(qvm-prefs work qid)
qvm-volume export work:private "$work/work-private.img"
cmp "$work/work-private.img" "$work/emergency/vm$qid/private.img"
diff -r "$work/home/user" "$work/emergency/dom0-home/user"
echo "work's private volume and the dom0 home recovered identical;" \
	"$(du -h "$work/emergency/vm$qid/private.img" | cut -f1) used of $(du -h --apparent-size "$work/emergency/vm$qid/private.img" | cut -f1) (sparse)"

echo
echo "a wrong passphrase is refused:"
echo 'not the passphrase' > "$work/wrong"
if pedos-archive verify -i "$backup" -p "$work/wrong"; then echo "demo: wrong passphrase accepted" >&2; exit 1; fi
echo "demo finished: $work"
