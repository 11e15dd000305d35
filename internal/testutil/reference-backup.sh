#!/usr/bin/env bash
# Builds a format 4 backup the way the reference writer does, with standard
# tools only: per stored file `tar --sparse | FILTER | split`, one
# `scrypt enc` per piece with the name-bound passphrase, and one
# `tar -cO --posix` archive per member, concatenated (format.md §1, §2, §11).
#
# Environment: SRC (fixture dir: qubes.xml, one directory per VM named by
# its backup-path, such as vm1/, holding its files (*.img, firewall.xml,
# notes.txt, ...), and optionally home/<user>/), OUT (archive path), PASS,
# ID (backup id), SPLIT (piece size in bytes), FILTER (gzip, bzip2, xz or
# none), OMIT (optional: space-separated pieces, such as
# "vm1/private.img.002.enc", left out of the archive, as if lost). Each VM's images are stored first, then its other files, as the
# reference writer orders them; VMs in version order (vm2 before vm10).
# The passphrase reaches scrypt on stdin, never in arguments.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

if [ "$FILTER" = none ]; then compressed=False; filter=gzip; squeeze=cat
else compressed=True; filter=$FILTER; squeeze=$FILTER; fi

encrypt() { # key-string plain-file enc-file
	printf '%s\n' "$1" | scrypt enc -P --logN 10 -r 8 -p 1 "$2" "$3"
}

printf 'version=4\nencrypted=True\ncompressed=%s\ncompression-filter=%s\nhmac-algorithm=scrypt\nbackup-id=%s\n' \
	"$compressed" "$filter" "$ID" > backup-header
encrypt "backup-header!$PASS" backup-header backup-header.hmac
members=(backup-header backup-header.hmac)

store() { # source-dir base-name stored-name [tar options]
	local dir=$1 base=$2 name=$3; shift 3
	mkdir -p "$(dirname "$name")"
	tar -c --sparse -C "$dir" "$@" --xform "s:^$base:$name:" "$base" | $squeeze | split -b "$SPLIT" -d -a 3 - "$name."
	# The reference writer starts a new piece as soon as one is full, so a
	# stream of an exact multiple of SPLIT ends with an empty piece.
	local pieces last
	pieces=$(ls "$name".[0-9][0-9][0-9] | sort -V)
	last=$(printf '%s\n' "$pieces" | tail -n 1)
	if [ "$(stat -c %s "$last")" -eq "$SPLIT" ]; then
		: > "$(printf '%s.%03d' "$name" "$(printf '%s\n' "$pieces" | wc -l)")"
	fi
	local piece
	for piece in $(ls "$name".[0-9]* | sort -V); do
		encrypt "$ID!$piece!$PASS" "$piece" "$piece.enc"
		rm "$piece"
		members+=("$piece.enc")
	done
}

store "$SRC" qubes.xml qubes.xml
for dir in $(cd "$SRC" && ls -d vm* | sort -V); do
	for f in $(cd "$SRC/$dir" && { ls | grep '\.img$' | sort; ls | grep -v '\.img$' | sort; }); do
		store "$SRC/$dir" "$f" "$dir/$f" --dereference
	done
done
if [ -d "$SRC/home" ]; then
	user=$(ls "$SRC/home")
	store "$SRC/home" "$user" "dom0-home/$user"
fi

for m in "${members[@]}"; do
	case " ${OMIT:-} " in *" $m "*) continue ;; esac
	tar -cO --posix "$m"
done > "$OUT"
