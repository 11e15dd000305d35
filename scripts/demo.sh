#!/usr/bin/env bash
# Self-contained demo: builds the tools, creates a demo PedOS host and shows
# it with the admin tools, then takes the "work" VM's private volume and the
# dom0 home into an encrypted format 4 archive, verifies it, extracts it with
# our reader, and recovers it again with nothing but GNU tar, scrypt and gzip
# (doc/emergency-restore.md). qvm-backup / qvm-backup-restore will replace
# the pedos-archive steps.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v scrypt >/dev/null || { apt-get update -qq && apt-get install -y -qq scrypt >/dev/null; }

work=$(mktemp -d /tmp/pedos-demo.XXXXXX)
echo "demo directory: $work"
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/...
export PATH=$work/bin:$PATH PEDOS_ROOT=$work/host
tool=pedos-archive

echo "\$ pedos-host demo --user user --home $work/src/home/user"
pedos-host demo --user user --home "$work/src/home/user"
echo "\$ qvm-start work && qvm-ls"
qvm-start work
qvm-ls
echo "\$ qvm-volume info work:private"
qvm-volume info work:private
echo "\$ qvm-shutdown work"
qvm-shutdown work
mkdir -p "$work/src"
qvm-volume export work:private "$work/src/private.img"
echo 'demo passphrase' > "$work/pass"   # a real user types it at a prompt

echo
echo "\$ pedos-archive create ..."
"$tool" create -o "$work/backup" -p "$work/pass" \
	vm1/private.img="$work/src/private.img" dom0-home/user="$work/src/home/user"
ls -l "$work/backup"
echo
echo "\$ tar -itvf backup     # the outer container is plain tar"
tar -itvf "$work/backup"
echo
echo "\$ pedos-archive verify ..."
"$tool" verify -i "$work/backup" -p "$work/pass"
echo
echo "\$ pedos-archive extract ..."
mkdir "$work/restored"
"$tool" extract -i "$work/backup" -p "$work/pass" -C "$work/restored"
cmp "$work/src/private.img" "$work/restored/vm1/private.img"
echo "restored image identical; disk usage $(du -h "$work/restored/vm1/private.img" | cut -f1) of $(du -h --apparent-size "$work/restored/vm1/private.img" | cut -f1) (sparse)"
echo
echo "emergency recovery with standard tools only:"
mkdir "$work/emergency"
procedure=$(sed -n '/<!-- emergency-v4:begin -->/,/<!-- emergency-v4:end -->/p' doc/emergency-restore.md | sed '1,2d;$d' | sed '$d')
(cd "$work/emergency" && BACKUP="$work/backup" PASS="$(head -n1 "$work/pass")" bash -c "$procedure")
cmp "$work/src/private.img" "$work/emergency/vm1/private.img"
diff -r "$work/src/home/user" "$work/emergency/dom0-home/user"
echo "recovered image and home identical"
echo
echo "a wrong passphrase is refused:"
echo 'not the passphrase' > "$work/wrong"
if "$tool" verify -i "$work/backup" -p "$work/wrong"; then echo "demo: wrong passphrase accepted" >&2; exit 1; fi
echo "demo finished: $work"
