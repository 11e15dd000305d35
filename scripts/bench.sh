#!/usr/bin/env bash
# Our writer, reader, qvm-backup and qvm-backup-restore against the
# standard-tools pipeline, on the same data at the same scrypt cost
# (logN 18, r 8, p 1), with peak memory.
#
# Data sets:
#   halves  one VM, a 2 GiB sparse image holding 512 MiB of data in eight
#           regions, half incompressible, half text
#   mixed   one VM, a 4 GiB sparse image holding 768 MiB in 64 regions:
#           incompressible, text, allocated zero blocks, text; holes between
#   many    30 VMs of 8 MiB images holding 4 MiB each (KDF-bound: one key
#           derivation per VM for about 2 MiB of compressed data)
#
# The standard pipeline, writing: the fastest honest rendition of what the
# reference writer does (format.md §11), streamed, nothing staged: per
# stored file `tar --sparse | gzip | split -b 100M --filter`, the filter
# running one `scrypt enc` per piece as it is produced; then one
# `tar -cO --posix` archive per member.
# The standard pipeline, reading, streamed: the outer tar, the header check,
# then per stored file its pieces through `scrypt dec`, one after another,
# into `gzip -d | tar -x` (no decrypted piece touches the disk). The
# documented procedure (scripts/emergency-restore.sh, pieces decrypted to
# disk first) is timed too.
# Ours: pedos-archive create/extract of the same files, qvm-backup of a host
# holding them as VMs' private volumes, qvm-backup-restore of that backup
# into a fresh host.
#
# Each run starts from the same memory state (caches dropped, inputs read
# back in); the median of RUNS runs is reported with all runs. Peak RSS is
# /usr/bin/time's maximum resident set size of our process.
# A last section writes the mixed set at logN 20 (1 GiB a derivation, the
# reference writer's default cost on most machines) and reports the time
# and peak RSS of verifying and restoring it.
#
# Usage: scripts/bench.sh [-s SET]... [WORKDIR]   (default: every set,
# /tmp/pedos-bench; needs about 8 GiB of disk). RUNS=3 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
sets=()
while getopts s: opt; do
	case $opt in
	s) sets+=("$OPTARG") ;;
	*) echo "usage: $0 [-s halves|mixed|many]... [WORKDIR]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ ${#sets[@]} -gt 0 ] || sets=(halves mixed many)
runs=${RUNS:-3}
for tool in scrypt tar gzip split bc /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (Debian: scrypt tar gzip coreutils bc time)" >&2; exit 1; }
done

work=${1:-/tmp/pedos-bench}
rm -rf "$work"
mkdir -p "$work/bin"
# the command-line tools: pedos-manager, the GUI, needs cgo and X headers
go build -o "$work/bin/" $(go list ./cmd/... | grep -v /pedos-manager$)
bin=$work/bin
pass='bench passphrase'
printf '%s\n' "$pass" > "$work/pass"; chmod 600 "$work/pass"
id=20260101T120000-bench
export PASS=$pass ID=$id # for split's filter, which builds each piece's key file

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

# settle: the same memory state before every timed run. Earlier runs leave
# gigabytes of output in the page cache; taking memory back from it (and
# compacting it for the KDF's huge pages) then lands on whichever run comes
# next, so it is dropped, as root can, and the inputs are read back in.
settle() {
	sync
	if [ -w /proc/sys/vm/drop_caches ]; then
		echo 3 > /proc/sys/vm/drop_caches
		cat "$src"/*/*.img "$work"/*.backup "$work"/qb-out/* > /dev/null 2>&1 || true
	fi
}

# timed LABEL FUNCTION OUTPUT: the median of $runs runs; OUTPUT is removed
# before each, untimed. Our programs write their peak RSS (KiB) to
# $work/rss, through rss_of below; the median of those is reported too.
timed() {
	local t0 t1 times=() rss=()
	for _ in $(seq "$runs"); do
		rm -rf "$3" "$work/rss"
		settle
		t0=$(now); "$2"; t1=$(now)
		times+=("$(elapsed "$t0" "$t1")")
		[ -s "$work/rss" ] && rss+=("$(sort -n "$work/rss" | tail -1)")
	done
	local median mid=$(((runs + 1) / 2))
	median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "${mid}p")
	local mem=""
	if [ ${#rss[@]} -gt 0 ]; then
		mem=$(printf 'peak RSS %d MiB' "$(($(printf '%s\n' "${rss[@]}" | sort -n | sed -n "${mid}p") / 1024))")
	fi
	printf '  %-44s %7.2f s  (runs: %s) %s\n' "$1" "$median" "${times[*]}" "$mem" >&2
	echo "$median"
}

# rss_of CMD...: runs CMD, appending its peak RSS to $work/rss.
rss_of() { /usr/bin/time -f %M -a -o "$work/rss" "$@"; }

# --- the data sets, as source files and as hosts -------------------------------
# make_set SET: $src/<vm>/private.img for each VM, and the host $work/host-SET
# holding them as the private volumes of AppVMs of template tpl.
make_set() {
	src=$work/src-$1
	host=$work/host-$1
	vms=()
	case $1 in
	halves) mkdir -p "$src/bench"; "$bin/pedos-archive" sample -o "$src/bench/private.img" --size 2G --data 512M; vms=(bench) ;;
	mixed) mkdir -p "$src/bench"; "$bin/pedos-archive" sample -o "$src/bench/private.img" --size 4G --data 768M --kind mixed; vms=(bench) ;;
	many)
		for i in $(seq -w 1 30); do
			mkdir -p "$src/vm$i"
			"$bin/pedos-archive" sample -o "$src/vm$i/private.img" --size 8M --data 4M --kind mixed --seed "$((10#$i))"
			vms+=("vm$i")
		done ;;
	esac
	make_host "$host"
	for vm in "${vms[@]}"; do
		PEDOS_ROOT=$host "$bin/qvm-create" --class AppVM -t tpl -l red "$vm"
		PEDOS_ROOT=$host "$bin/qvm-volume" import "$vm:private" "$src/$vm/private.img"
	done
}

# make_host DIR: an empty host with the template tpl (not backed up).
make_host() {
	PEDOS_ROOT=$1 "$bin/pedos-host" init --user bench --home "$1-home" >/dev/null
	mkdir -p "$1-home"
	PEDOS_ROOT=$1 "$bin/qvm-create" --class TemplateVM -l black tpl
}

# --- standard tools -------------------------------------------------------------
std_write() {
	local dir=$work/std
	mkdir -p "$dir"; cd "$dir"
	printf 'version=4\nencrypted=True\ncompressed=True\ncompression-filter=gzip\nhmac-algorithm=scrypt\nbackup-id=%s\n' "$id" > backup-header
	printf '%s\n' "backup-header!$pass" > key
	scrypt enc --logN 18 -r 8 -p 1 --passphrase file:key backup-header backup-header.hmac
	rm key
	printf '<qubes/>\n' > qubes.xml
	# The filter gets the piece's name in $FILE; the key file holds the
	# name-bound passphrase only while scrypt reads it.
	local filter='printf "%s\n" "$ID!$FILE!$PASS" > "$FILE.key" && scrypt enc --logN 18 -r 8 -p 1 --passphrase file:"$FILE.key" - "$FILE.enc"; rc=$?; rm -f "$FILE.key"; exit $rc'
	tar -c qubes.xml | gzip | split -b 104857600 -d -a 3 --filter="$filter" - qubes.xml.
	local members=(backup-header backup-header.hmac qubes.xml.000.enc) vm
	for vm in "${vms[@]}"; do
		mkdir -p "$vm"
		tar -c --sparse -C "$src/$vm" --xform "s:^private.img:$vm/private.img:" private.img |
			gzip | split -b 104857600 -d -a 3 --filter="$filter" - "$vm/private.img."
		members+=($(ls "$vm"/private.img.*.enc | sort -V))
	done
	for m in "${members[@]}"; do tar -cO --posix "$m"; done > "$work/std.backup"
	cd - >/dev/null
}

std_read() {
	local dir=$work/std-out
	mkdir -p "$dir"; cd "$dir"
	tar -i -xf "$work/std.backup"
	printf '%s\n' "backup-header!$pass" > key
	scrypt dec --passphrase file:key backup-header.hmac backup-header.checked
	cmp backup-header backup-header.checked
	printf '%s\n' "$id!qubes.xml.000!$pass" > key
	scrypt dec --passphrase file:key qubes.xml.000.enc | gzip -d | tar -x
	local vm chunk
	for vm in "${vms[@]}"; do
		for chunk in $(ls "$vm"/private.img.[0-9]*.enc | sort -V); do
			printf '%s\n' "$id!${chunk%.enc}!$pass" > key
			scrypt dec --passphrase file:key "$chunk"
		done | gzip -d | tar -x
	done
	rm key
	cd - >/dev/null
}

doc_read() {
	scripts/emergency-restore.sh "$work/std.backup" "$work/pass" "$work/doc-out" >/dev/null
}

# --- ours -----------------------------------------------------------------------
ours_write() {
	local args=() vm
	for vm in "${vms[@]}"; do args+=("$vm/private.img=$src/$vm/private.img"); done
	rss_of "$bin/pedos-archive" create -o "$work/ours.backup" -p "$work/pass" --scrypt-logn 18 "${args[@]}"
}

ours_read() {
	mkdir -p "$work/ours-out"
	rss_of "$bin/pedos-archive" extract -i "$work/ours.backup" -p "$work/pass" -C "$work/ours-out" >/dev/null
}

qvm_backup_write() {
	mkdir -p "$work/qb-out"
	PEDOS_ROOT=$host rss_of "$bin/qvm-backup" -y --progress none -p "$work/pass" \
		--scrypt-logn "$logn" "$work/qb-out" "${vms[@]}" >/dev/null
}

# qvm-backup-restore into a fresh host with the template (made untimed,
# before the clock starts, by restore_host below).
qvm_restore() {
	PEDOS_ROOT=$work/restore-host rss_of "$bin/qvm-backup-restore" -y -q --progress none -p "$work/pass" \
		"$(ls "$work"/qb-out/qubes-backup-*)" >/dev/null
}

qvm_verify() {
	rss_of "$bin/qvm-backup-restore" --verify-only -q --progress none -p "$work/pass" \
		"$(ls "$work"/qb-out/qubes-backup-*)" >/dev/null
}

# timed_restore: qvm_restore, each run into a fresh host made untimed.
timed_restore() {
	local t0 t1 times=() rss=()
	for _ in $(seq "$runs"); do
		rm -rf "$work/restore-host" "$work/restore-host-home" "$work/rss"
		make_host "$work/restore-host"
		settle
		t0=$(now); qvm_restore; t1=$(now)
		times+=("$(elapsed "$t0" "$t1")")
		rss+=("$(sort -n "$work/rss" | tail -1)")
	done
	local mid=$(((runs + 1) / 2)) median
	median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "${mid}p")
	printf '  %-44s %7.2f s  (runs: %s) peak RSS %d MiB\n' "qvm-backup-restore into a fresh host" "$median" "${times[*]}" \
		"$(($(printf '%s\n' "${rss[@]}" | sort -n | sed -n "${mid}p") / 1024))" >&2
	echo "$median"
}

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.1f'; }

summary=()
for set in "${sets[@]}"; do
	echo "== data set $set: building..." >&2
	rm -rf "$work"/src-* "$work"/host-* "$work"/std* "$work"/ours* "$work"/qb-out "$work"/doc-out "$work"/restore-host*
	make_set "$set"
	logn=18
	echo "timing (wall clock, median of $runs, $(nproc) cores):" >&2
	sw=$(timed "standard tools, write (streamed)" std_write "$work/std")
	ow=$(timed "pedos-archive create" ours_write "$work/ours.backup")
	qw=$(timed "qvm-backup" qvm_backup_write "$work/qb-out")
	sr=$(timed "standard tools, read (streamed)" std_read "$work/std-out")
	dr=$(timed "standard tools, read (documented procedure)" doc_read "$work/doc-out")
	or=$(timed "pedos-archive extract" ours_read "$work/ours-out")
	vr=$(timed "qvm-backup-restore --verify-only" qvm_verify "")
	qr=$(timed_restore)
	for vm in "${vms[@]}"; do
		cmp "$src/$vm/private.img" "$work/std-out/$vm/private.img"
		cmp "$src/$vm/private.img" "$work/doc-out/$vm/private.img"
		cmp "$src/$vm/private.img" "$work/ours-out/$vm/private.img"
		cmp "$src/$vm/private.img" "$work/restore-host/appvms/$vm/private.img"
	done
	line=$(printf '%-7s backup %sx (pedos-archive %sx); restore %sx, verify %sx (pedos-archive extract %sx); against the documented procedure: restore %sx' \
		"$set" "$(ratio "$sw" "$qw")" "$(ratio "$sw" "$ow")" "$(ratio "$sr" "$qr")" "$(ratio "$sr" "$vr")" "$(ratio "$sr" "$or")" "$(ratio "$dr" "$qr")")
	echo "$line" >&2
	summary+=("$line")
done

# The reference writer's default cost: peak memory of reading it.
if [[ " ${sets[*]} " == *" mixed "* ]]; then
	echo "== mixed set at logN 20 (1 GiB a derivation):" >&2
	runs=1
	logn=20
	rm -rf "$work"/src-* "$work"/host-* "$work"/std* "$work"/ours* "$work"/qb-out "$work"/doc-out "$work"/restore-host*
	make_set mixed
	qvm_backup_write
	timed "qvm-backup-restore --verify-only, logN 20" qvm_verify "" >/dev/null
	timed_restore >/dev/null
fi

echo "== ratios against the streamed standard pipeline (higher is faster):" >&2
printf '%s\n' "${summary[@]}" >&2
