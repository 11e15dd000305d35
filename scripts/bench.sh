#!/usr/bin/env bash
# Archive writer and reader against the standard-tools pipeline, same data
# and same scrypt cost (logN 18, r 8, p 1).
#
# Data set: a 2 GiB sparse image holding 512 MiB of data in eight regions,
# half incompressible, half text (pedos-archive sample).
# Standard tools, writing (the reference writer's steps, format.md §11):
#   tar --sparse | gzip | split -b 100M, one `scrypt enc` per piece,
#   one `tar -cO --posix` archive per member.
# Ours, reading: pedos-archive extract, and qvm-backup-restore of the
# qvm-backup archive into a fresh host.
# Standard tools, reading (the documented emergency procedure, streamed):
#   tar -i -xf, header check, qubes.xml, `scrypt dec` per piece | gzip -d | tar -x.
# Usage: scripts/bench.sh [WORKDIR]   (default /tmp/pedos-bench; needs ~3 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in scrypt tar gzip split bc; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done

work=${1:-/tmp/pedos-bench}
rm -rf "$work"
mkdir -p "$work"
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/...
tool=$work/bin/pedos-archive
pass='bench passphrase'
printf '%s\n' "$pass" > "$work/pass"; chmod 600 "$work/pass"
id=20260101T120000-bench

echo "building the data set..."
mkdir -p "$work/src"
"$tool" sample -o "$work/src/private.img" --size 2G --data 512M
cat "$work/src/private.img" > /dev/null   # both sides start from a warm page cache

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

# --- standard tools: write ---------------------------------------------------
std_write() {
	local dir=$work/std
	mkdir -p "$dir/vm1"; cd "$dir"
	printf 'version=4\nencrypted=True\ncompressed=True\ncompression-filter=gzip\nhmac-algorithm=scrypt\nbackup-id=%s\n' "$id" > backup-header
	printf '%s\n' "backup-header!$pass" > key
	scrypt enc --logN 18 -r 8 -p 1 --passphrase file:key backup-header backup-header.hmac
	printf '<qubes/>\n' > qubes.xml
	tar -c qubes.xml | gzip | split -b 104857600 -d -a 3 - qubes.xml.
	tar -c --sparse -C "$work/src" --xform 's:^private.img:vm1/private.img:' private.img |
		gzip | split -b 104857600 -d -a 3 - vm1/private.img.
	local members=(backup-header backup-header.hmac)
	for piece in qubes.xml.000 $(ls vm1/private.img.[0-9]* | sort -V); do
		printf '%s\n' "$id!$piece!$pass" > key
		scrypt enc --logN 18 -r 8 -p 1 --passphrase file:key "$piece" "$piece.enc"
		rm "$piece"
		members+=("$piece.enc")
	done
	for m in "${members[@]}"; do tar -cO --posix "$m"; done > "$work/std.backup"
	cd - >/dev/null
}

# --- standard tools: read (emergency procedure) --------------------------------
std_read() {
	local dir=$work/std-out
	mkdir -p "$dir"; cd "$dir"
	tar -i -xf "$work/std.backup"
	printf '%s\n' "backup-header!$pass" > key
	scrypt dec --passphrase file:key backup-header.hmac backup-header.checked
	cmp backup-header backup-header.checked
	printf '%s\n' "$id!qubes.xml.000!$pass" > key
	scrypt dec --passphrase file:key qubes.xml.000.enc | gzip -d | tar -x
	for chunk in $(ls vm1/private.img.[0-9]*.enc | sort -V); do
		printf '%s\n' "$id!${chunk%.enc}!$pass" > key
		scrypt dec --passphrase file:key "$chunk"
	done | gzip -d | tar -x
	cd - >/dev/null
}

# The documented procedure as users run it (doc/emergency-restore.md):
# decrypted pieces go to disk before they are joined and decompressed.
doc_read() {
	scripts/emergency-restore.sh "$work/std.backup" "$work/pass" "$work/doc-out" >/dev/null
}

ours_write() {
	"$tool" create -o "$work/ours.backup" -p "$work/pass" --scrypt-logn 18 vm1/private.img="$work/src/private.img"
}

# qvm-backup of a host whose one VM holds the data set as its private volume.
qvm_backup_write() {
	mkdir -p "$work/qb-out"
	PEDOS_ROOT=$work/host "$work/bin/qvm-backup" -y --progress none -p "$work/pass" \
		--scrypt-logn 18 "$work/qb-out" bench >/dev/null
}

# qvm-backup-restore of that backup into a fresh host (making the empty
# host, a few milliseconds, is inside the timing).
qvm_restore() {
	PEDOS_ROOT=$work/restore-host "$work/bin/pedos-host" init --user bench --home "$work/restore-home" >/dev/null
	PEDOS_ROOT=$work/restore-host "$work/bin/qvm-backup-restore" -y -q --progress none -p "$work/pass" \
		"$(ls "$work"/qb-out/qubes-backup-*)" bench >/dev/null
}

ours_read() {
	mkdir -p "$work/ours-out"
	"$tool" extract -i "$work/ours.backup" -p "$work/pass" -C "$work/ours-out" >/dev/null
}

# settle: the same memory state before every timed run. Earlier runs leave
# gigabytes of output in the page cache; taking memory back from it (and
# compacting it for the KDF's huge pages) then lands on whichever run comes
# next, so it is dropped, as root can, and the inputs are read back in:
# every run starts with warm inputs and free memory.
settle() {
	sync   # earlier steps' dirty pages must not be written back during this one
	if [ -w /proc/sys/vm/drop_caches ]; then
		echo 3 > /proc/sys/vm/drop_caches
		cat "$work/src/private.img" "$work"/*.backup "$work"/qb-out/* > /dev/null 2>&1 || true
	fi
}

# run LABEL FUNCTION OUTPUT: the median of three timed runs (this machine
# is a shared VM; single runs vary by 20%). OUTPUT is removed before each
# run, untimed: deleting the last run's files is not part of the job.
run() {
	local t0 t1 times=()
	for _ in 1 2 3; do
		rm -rf "$3"
		settle
		t0=$(now); "$2"; t1=$(now)
		times+=("$(elapsed "$t0" "$t1")")
	done
	local median
	median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
	printf '%-40s %6.2f s   (runs: %s)\n' "$1" "$median" "${times[*]}" >&2
	echo "$median"
}

PEDOS_ROOT=$work/host "$work/bin/pedos-host" init --user bench --home "$work/bench-home" >/dev/null
mkdir -p "$work/bench-home"
PEDOS_ROOT=$work/host "$work/bin/qvm-create" --class StandaloneVM -l red bench
PEDOS_ROOT=$work/host "$work/bin/qvm-volume" import bench:private "$work/src/private.img"

echo "timing (seconds, wall clock, median of 3, $(nproc) cores):"
sw=$(run "standard tools, write" std_write "$work/std")
ow=$(run "pedos-archive, write" ours_write "$work/ours.backup")
qw=$(run "qvm-backup of a VM holding the data" qvm_backup_write "$work/qb-out")
sr=$(run "standard tools, read (streamed)" std_read "$work/std-out")
dr=$(run "standard tools, read (documented procedure)" doc_read "$work/doc-out")
or=$(run "pedos-archive, read" ours_read "$work/ours-out")
qr=$(run "qvm-backup-restore into a fresh host" qvm_restore "$work/restore-host")

cmp "$work/src/private.img" "$work/std-out/vm1/private.img"
cmp "$work/src/private.img" "$work/doc-out/vm1/private.img"
cmp "$work/src/private.img" "$work/ours-out/vm1/private.img"
cmp "$work/src/private.img" "$work/restore-host/appvms/bench/private.img"
printf 'archive sizes: standard %s bytes, ours %s bytes\n' "$(stat -c %s "$work/std.backup")" "$(stat -c %s "$work/ours.backup")"
printf 'write: %.1fx faster than the standard tools (qvm-backup: %.1fx)\n' "$(echo "$sw / $ow" | bc -l)" "$(echo "$sw / $qw" | bc -l)"
printf 'read:  %.1fx faster than the streamed standard tools, %.1fx faster than the documented procedure\n' \
	"$(echo "$sr / $or" | bc -l)" "$(echo "$dr / $or" | bc -l)"
printf 'restore: qvm-backup-restore %.1fx faster than the streamed standard tools, %.1fx faster than the documented procedure\n' \
	"$(echo "$sr / $qr" | bc -l)" "$(echo "$dr / $qr" | bc -l)"
