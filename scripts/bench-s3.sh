#!/usr/bin/env bash
# qvm-backup into object storage against qvm-backup into a directory, both
# through the same VM-side service (--dest-vm), on loopback: the overhead
# ratio of the S3 upload (target: within 15%) and the peak memory.
#
# Data set: one VM, a 2 GiB sparse image holding 512 MiB of data (half
# incompressible, half text): the "halves" set of scripts/bench.sh.
# The server is SeaweedFS (weed server, master + volume + filer + S3), as
# in the tests: $PEDOS_WEED, else the binary scripts/test.sh caches. With
# SERVER=minio it is MinIO instead: $PEDOS_MINIO, else a binary built
# once (about 5 minutes) from its Go module and cached. SeaweedFS hashes
# every byte it receives with MD5 three times, MinIO once, so the second
# server shows how much of the overhead is the server's own work.
# Peak RSS is /usr/bin/time's: the largest of qvm-backup and the VM-side
# service it runs (the process that holds the upload's part buffers).
# The server stores what it receives on the same machine, so it is timed
# twice: sharing both cores with the backup, and with the server on a
# core of its own and the backup on the other (for both destinations),
# as a NAS or a cloud would be; the CPU time of each side is reported.
# With TLS=1 the VM reaches the server over HTTPS (a certificate made for
# the run, trusted through ca_bundle), as it would a NAS or a cloud: parts
# then go unsigned with their CRC32C, and TLS encrypts them.
#
# Usage: scripts/bench-s3.sh [WORKDIR]   (default /tmp/pedos-bench-s3; about
# 3 GiB of disk). RUNS=3, LOGN=18, SERVER=seaweedfs, TLS=0 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
logn=${LOGN:-18}
for tool in curl bc taskset openssl /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench-s3: $tool is not installed" >&2; exit 1; }
done
server=${SERVER:-seaweedfs}
case $server in
seaweedfs)
	weed=${PEDOS_WEED:-$(ls -1 "${XDG_CACHE_HOME:-$HOME/.cache}"/pedos/weed-* 2>/dev/null | grep -v src | head -1)}
	[ -x "$weed" ] || weed=${XDG_CACHE_HOME:-$HOME/.cache}/pedos/weed
	[ -x "$weed" ] || { echo "bench-s3: no SeaweedFS server: run scripts/test.sh once, or set PEDOS_WEED" >&2; exit 1; }
	;;
minio)
	minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
	minio=${PEDOS_MINIO:-${XDG_CACHE_HOME:-$HOME/.cache}/pedos/minio-$minio_version}
	if [ ! -x "$minio" ]; then
		echo "bench-s3: building the MinIO server $minio_version (once; about 5 minutes)" >&2
		gobin=$(mktemp -d)
		GOBIN=$gobin go install "github.com/minio/minio@$minio_version"
		mkdir -p "$(dirname "$minio")"
		mv "$gobin/minio" "$minio"
		rmdir "$gobin"
	fi
	;;
*) echo "bench-s3: SERVER is seaweedfs or minio" >&2; exit 1 ;;
esac

work=${1:-/tmp/pedos-bench-s3}
rm -rf "$work"
mkdir -p "$work/bin" "$work/weed"
go build -o "$work/bin/" $(go list ./cmd/... | grep -v /pedos-manager$)
bin=$work/bin
printf 'bench passphrase\n' > "$work/pass"; chmod 600 "$work/pass"

# --- the server ----------------------------------------------------------------
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mp=$(port); mg=$(port); vp=$(port); vg=$(port); fp=$(port); fg=$(port); sp=$(port); sg=$(port); sh=$(port)
# ctl: where curl makes the bucket; endpoint: what the VM is given.
ctl=http://127.0.0.1:$sp endpoint=$ctl weed_tls=() minio_tls=() ca=()
if [ "${TLS:-0}" = 1 ]; then
	mkdir -p "$work/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls/private.key" -out "$work/tls/public.crt" 2>/dev/null
	ca=(--cacert "$work/tls/public.crt")
	if [ "$server" = seaweedfs ]; then # HTTPS on a port of its own
		endpoint=https://127.0.0.1:$sh
		weed_tls=(-s3.port.https="$sh" -s3.cert.file="$work/tls/public.crt" -s3.key.file="$work/tls/private.key")
	else # HTTPS only
		ctl=https://127.0.0.1:$sp endpoint=$ctl
		minio_tls=(--certs-dir "$work/tls")
	fi
fi
if [ "$server" = seaweedfs ]; then
	cat > "$work/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"bench-key","secretKey":"bench-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
	"$weed" server -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
		-master.port="$mp" -master.port.grpc="$mg" -volume.port="$vp" -volume.port.grpc="$vg" \
		-filer.port="$fp" -filer.port.grpc="$fg" -s3 -s3.port="$sp" -s3.port.grpc="$sg" \
		-s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$work/s3.json" \
		-filer.localSocket="$work/f.sock" -s3.localSocket="$work/s.sock" -volume.max=0 "${weed_tls[@]}" \
		> "$work/weed.log" 2>&1 &
else
	MINIO_ROOT_USER=bench-key MINIO_ROOT_PASSWORD=bench-secret MINIO_BROWSER=off \
		"$minio" server "$work/weed" --address "127.0.0.1:$sp" --console-address "127.0.0.1:$sg" "${minio_tls[@]}" \
		> "$work/weed.log" 2>&1 &
fi
weed_pid=$!
# SIGTERM, a grace period, then SIGKILL: weed may take long to exit.
stop_weed() {
	kill -TERM "$weed_pid" 2>/dev/null || return 0
	for _ in $(seq 50); do kill -0 "$weed_pid" 2>/dev/null || break; sleep 0.2; done
	kill -KILL "$weed_pid" 2>/dev/null || true
	wait "$weed_pid" 2>/dev/null || true
}
trap stop_weed EXIT
for _ in $(seq 360); do
	curl -s "${ca[@]}" -o /dev/null "$ctl/" && break
	sleep 0.25
done
# The bucket, with an S3 request that curl signs (SigV4).
for _ in $(seq 40); do
	curl -sf "${ca[@]}" --aws-sigv4 aws:amz:us-east-1:s3 --user bench-key:bench-secret -X PUT "$ctl/bench" >/dev/null && break
	sleep 0.5
done

# --- the host: VM bench (the data), VM sys-backup (running, the destination) --
host=$work/host
PEDOS_ROOT=$host "$bin/pedos-host" init --user bench --home "$work/home" >/dev/null
mkdir -p "$work/home"
PEDOS_ROOT=$host "$bin/qvm-create" --class TemplateVM -l black tpl
PEDOS_ROOT=$host "$bin/qvm-create" --class AppVM -t tpl -l red sys-backup
PEDOS_ROOT=$host "$bin/qvm-create" --class AppVM -t tpl -l red bench
"$bin/pedos-archive" sample -o "$work/private.img" --size 2G --data 512M
PEDOS_ROOT=$host "$bin/qvm-volume" import bench:private "$work/private.img"
rm "$work/private.img"
PEDOS_ROOT=$host "$bin/qvm-start" sys-backup
vmhome=$host/vm-fs/sys-backup/home/user
mkdir -p "$vmhome/.aws" "$vmhome/backups"
printf '[default]\nregion = us-east-1\nendpoint_url = %s\n' "$endpoint" > "$vmhome/.aws/config"
if [ "${TLS:-0}" = 1 ]; then
	printf 'ca_bundle = %s\n' "$work/tls/public.crt" >> "$vmhome/.aws/config"
fi
printf '[default]\naws_access_key_id = bench-key\naws_secret_access_key = bench-secret\n' > "$vmhome/.aws/credentials"

now() { date +%s.%N; }
# The server's CPU time (user + system, all its threads), in seconds.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$weed_pid/stat"; }

# timed LABEL DEST [PIN]: the median of $runs backups of VM bench to DEST
# in sys-backup: wall time, the CPU time of qvm-backup and the VM side
# it runs, the server's CPU time, and the peak RSS. PIN: the CPU list
# qvm-backup runs on (taskset).
timed() {
	local times=() cpus=() scpus=() rss=() t0 t1 s0 s1 pin=()
	[ -n "${3:-}" ] && pin=(taskset -c "$3")
	for _ in $(seq "$runs"); do
		rm -f "$vmhome"/backups/qubes-backup-*
		sync
		s0=$(server_cpu)
		t0=$(now)
		PEDOS_ROOT=$host "${pin[@]}" /usr/bin/time -f '%M %U %S' -o "$work/rss" "$bin/qvm-backup" -y -q --progress none \
			--scrypt-logn "$logn" -p "$work/pass" -d sys-backup "$2" bench >/dev/null
		t1=$(now)
		s1=$(server_cpu)
		times+=("$(echo "$t1 - $t0" | bc)")
		read -r m u s < <(tail -1 "$work/rss")
		rss+=("$m")
		cpus+=("$(echo "$u + $s" | bc)")
		scpus+=("$(echo "$s1 - $s0" | bc)")
	done
	local mid=$(((runs + 1) / 2))
	med() { printf '%s\n' "$@" | sort -n | sed -n "${mid}p"; }
	printf '  %-44s %6.2f s  (runs: %s)  CPU: ours %5.2f s, server %5.2f s  peak RSS %d MiB\n' "$1" \
		"$(med "${times[@]}")" "${times[*]}" "$(med "${cpus[@]}")" "$(med "${scpus[@]}")" "$(($(med "${rss[@]}") / 1024))" >&2
	med "${times[@]}"
}

overhead() { echo "($2 / $1 - 1) * 100" | bc -l | xargs printf '%.1f%%'; }

echo "backup of 512 MiB of data (2 GiB sparse volume), scrypt logN $logn, $runs runs, server $server, over ${endpoint%%:*}:" >&2
echo " sharing both cores with the server:" >&2
dir=$(timed "to a directory in the VM" /home/user/backups)
s3=$(timed "to s3://bench/host/ through the VM" s3://bench/host/)
echo "  overhead of the bucket: $(overhead "$dir" "$s3")" >&2
# A server on a machine of its own, as a NAS or a cloud is: here its own
# core, ours the other, for both destinations.
echo " the server on CPU 1, qvm-backup (and the VM side) on CPU 0:" >&2
taskset -a -p -c 1 "$weed_pid" >/dev/null
dir1=$(timed "to a directory in the VM" /home/user/backups 0)
s31=$(timed "to s3://bench/host/ through the VM" s3://bench/host/ 0)
taskset -a -p -c 0-$(($(nproc) - 1)) "$weed_pid" >/dev/null
echo "  overhead of the bucket: $(overhead "$dir1" "$s31")" >&2
