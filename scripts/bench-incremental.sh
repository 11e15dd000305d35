#!/usr/bin/env bash
# Incremental backups against full ones, on one VM whose private volume is
# a 10 GiB sparse image holding 2.5 GiB of data (pedos-archive sample, kind
# mixed: incompressible, text and allocated zero blocks; holes between).
#
# Timed (wall clock, median of RUNS runs, with every run and the median
# peak RSS), all at scrypt logN 18:
#   full                qvm-backup of the VM (no chain)
#   full, chain start   qvm-backup --incremental with no record: full, plus
#                       hashing every block for the record
#   increment untouched qvm-backup --incremental of the very file the full
#                       backup read (its stamp tells it is unchanged)
#   increment 0%/1%/10% qvm-backup --incremental after changing that share
#                       of the volume's data blocks (64 KiB each, random
#                       data); the image is rewritten first (0%: the same
#                       bytes), so it is read to find what changed
#   restore full        qvm-backup-restore of the full backup into a fresh host
#   restore chain       qvm-backup-restore of the newest of a chain (the
#                       full backup and the 1%, 10% and 0% increments)
#   verify chain        qvm-backup-restore --verify-only of that chain
# Each increment run starts from the same record (saved after the full
# backup and put back before each run) and the same changed volume, so the
# runs are the same work. Page caches are dropped before every run (as
# root), and the image read back in: the volume is in memory, as a VM's
# recently used disk is.
#
# With FS=btrfs or FS=xfs (as root), WORKDIR is a filesystem of that type
# on a loop device, so that backups keep reflink snapshots and increments
# find the changed blocks from extent maps instead of hashing every block;
# the changed volume then shares its unchanged blocks with the full
# backup's snapshot, as a VM's image does after writes.
#
# Usage: scripts/bench-incremental.sh [WORKDIR]   (default /tmp/pedos-bench-inc;
# needs about 10 GiB of disk). RUNS=3 by default; DATA=8G for the variant
# with 8 GiB of data.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
data=${DATA:-2560M}
for tool in python3 bc /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench-incremental: $tool is not installed" >&2; exit 1; }
done
work=${1:-/tmp/pedos-bench-inc}
fs=${FS:-}
mountpoint -q "$work" 2>/dev/null && umount "$work"
rm -rf "$work"
copy_img() { cp --sparse=always "$@"; }
if [ -n "$fs" ]; then
	mkdir -p "$work"
	rm -f "$work.fs"
	truncate -s 40G "$work.fs"
	"mkfs.$fs" -q -f "$work.fs"
	mount -o loop "$work.fs" "$work"
	trap 'cd /; umount "$work"; rm -f "$work.fs"' EXIT
	copy_img() { cp --reflink=always "$@"; }
fi
mkdir -p "$work/bin"
go build -o "$work/bin/" $(go list ./cmd/... | grep -v /pedos-manager$)
bin=$work/bin
printf 'bench passphrase\n' > "$work/pass"; chmod 600 "$work/pass"
host=$work/host
img=$host/appvms/bench/private.img

now() { date +%s.%N; }
settle() {
	sync
	if [ -w /proc/sys/vm/drop_caches ]; then
		echo 3 > /proc/sys/vm/drop_caches
		cat "$img" "$work"/out/* > /dev/null 2>&1 || true
	fi
}
make_host() { # DIR: an empty host with the template tpl (not backed up)
	PEDOS_ROOT=$1 "$bin/pedos-host" init --user bench --home "$1-home" >/dev/null
	mkdir -p "$1-home"
	PEDOS_ROOT=$1 "$bin/qvm-create" --class TemplateVM -l black tpl
}

# timed LABEL PREPARE RUN: the median of $runs runs of RUN, each after
# PREPARE (untimed); reports every run and the median peak RSS.
timed() {
	local t0 t1 times=() rss=()
	for _ in $(seq "$runs"); do
		rm -f "$work/rss"
		"$2"
		settle
		t0=$(now); "$3" || { echo "bench-incremental: $1 failed" >&2; exit 1; }; t1=$(now)
		times+=("$(echo "$t1 - $t0" | bc)")
		rss+=("$(sort -n "$work/rss" | tail -1)")
	done
	local mid=$(((runs + 1) / 2)) median
	median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "${mid}p")
	printf '  %-34s %7.2f s  (runs: %s) peak RSS %d MiB\n' "$1" "$median" "${times[*]}" \
		"$(($(printf '%s\n' "${rss[@]}" | sort -n | sed -n "${mid}p") / 1024))" >&2
	echo "$median"
}
rss_of() { /usr/bin/time -f %M -a -o "$work/rss" "$@"; }

backup() { # [ARGS...]: a backup of the VM into $work/out
	PEDOS_ROOT=$host rss_of "$bin/qvm-backup" -y -q --progress none -p "$work/pass" \
		--scrypt-logn 18 "$@" "$work/out" bench >/dev/null
}
restore() { # ARCHIVE [ARGS...]
	PEDOS_ROOT=$work/target rss_of "$bin/qvm-backup-restore" -y -q --progress none -p "$work/pass" "$@" >/dev/null
}
backup_inc() { backup --incremental --full-every 100; }
newest() { ls "$work"/out/qubes-backup-* | sort -V | tail -1; }

# change PERCENT: rewrite that share of the data blocks with random bytes.
change() {
	python3 - "$img" "$1" <<'EOF'
import os, random, sys
path, pct = sys.argv[1], float(sys.argv[2])
B = 64 << 10
fd = os.open(path, os.O_RDWR)
size, off, blocks = os.fstat(fd).st_size, 0, []
while off < size:
    try:
        start = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, start, os.SEEK_HOLE)
    blocks += range(start // B, (end + B - 1) // B)
    off = end
rng = random.Random(int(pct * 1000) + 1)
for b in rng.sample(blocks, int(len(blocks) * pct / 100)):
    os.pwrite(fd, rng.randbytes(B), b * B)
os.close(fd)
EOF
}

echo "building the data set (10 GiB image, $data of data)..." >&2
make_host "$host"
mkdir -p "$work/src"
"$bin/pedos-archive" sample -o "$work/src/private.img" --size 10G --data "$data" --kind mixed
PEDOS_ROOT=$host "$bin/qvm-create" --class AppVM -t tpl -l red bench
PEDOS_ROOT=$host "$bin/qvm-volume" import bench:private "$work/src/private.img"
rm "$work/src/private.img"
echo "timing (median of $runs, $(nproc) cores${fs:+, on $fs}):" >&2

record=$host/backup-chains
fresh_out() { rm -rf "$work/out" "$record"; mkdir -p "$work/out"; }
full=$(timed "full" fresh_out backup)
chain_start=$(timed "full, chain start" fresh_out backup_inc)
cp -a "$record" "$work/record-full"
copy_img "$img" "$work/base.img"
base=$(newest)
mv "$base" "$work/full.backup"
put_back() { # the record and the archives of the full backup alone
	rm -rf "$record" "$work/out"; mkdir -p "$work/out"
	cp -a "$work/record-full" "$record"
	cp "$work/full.backup" "$base"
}
declare -A inc
# The volume as the full backup read it, the same file: its stamp is the
# record's, so it is not read at all.
untouched=$(timed "increment, volume untouched" put_back backup_inc)
for pct in 0 1 10; do
	copy_img "$work/base.img" "$img"
	[ "$pct" = 0 ] || change "$pct"
	inc[$pct]=$(timed "increment, $pct% changed" put_back backup_inc)
	size=$(stat -c %s "$(newest)")
	printf '  %-34s %s bytes\n' "its archive" "$size" >&2
done

# The chain: full, then 1%, 10% and 0% increments.
copy_img "$work/base.img" "$img"
put_back
for pct in 1 10 0; do
	[ "$pct" = 0 ] || change "$pct"
	backup_inc
done
chain_newest=$(newest)
full_only() { rm -rf "$work/target" "$work/target-home"; make_host "$work/target"; }
restore_full() { restore "$work/full.backup"; }
restore_chain() { restore "$chain_newest"; }
rf=$(timed "restore full" full_only restore_full)
rc=$(timed "restore chain (full + 3 increments)" full_only restore_chain)
cmp "$img" "$work/target/appvms/bench/private.img"
verify_chain() { rss_of "$bin/qvm-backup-restore" -q --progress none -p "$work/pass" --verify-only "$chain_newest" >/dev/null; }
vc=$(timed "verify chain" true verify_chain)

r() { echo "$1 / $2" | bc -l | xargs printf '%.1f'; }
echo "== increments against a full backup (higher is faster):" >&2
printf '  untouched: %sx faster (%.2f s against %.2f s)\n' "$(r "$full" "$untouched")" "$untouched" "$full" >&2
for pct in 0 1 10; do
	printf '  %s%% changed: %sx faster (%.2f s against %.2f s)\n' "$pct" "$(r "$full" "${inc[$pct]}")" "${inc[$pct]}" "$full" >&2
done
printf '  chain start costs %.2f s more than a full backup\n' "$(echo "$chain_start - $full" | bc)" >&2
printf '  restoring the chain: %.2f s more than the full backup alone (%.2f s per increment)\n' \
	"$(echo "$rc - $rf" | bc)" "$(echo "($rc - $rf) / 3" | bc -l)" >&2
