#!/usr/bin/env bash
# The pieces of a format 3 or 2 backup, made the way the reference writers
# of Qubes R2 to R3.2 made them (format.md §5.1, §5.2), with the programs
# they ran: GNU tar --sparse, gzip or bzip2, `openssl enc -aes-256-cbc`
# with MD5 key derivation (OpenSSL 1.0's default), split, an OpenSSL
# digest for the HMACs; and a format 1 directory, copied with cp -rp
# (§5.3). legacy.go runs it one step at a time, in the stage directory.
#
# Usage: legacy-backup.sh COMMAND, the arguments in the environment:
#   hmac      F ALGO: F.hmac, the text `openssl dgst -ALGO -hmac PASS`
#             printed under OpenSSL 1.0: "(stdin)= <hex>"
#   v3file    SRC_DIR BASE SUBDIR DEST CHUNK COMPRESS (a program or "cat")
#             ENCRYPT (1 or empty) DEREF (1 or empty): one inner tar of
#             SRC_DIR/BASE named SUBDIR/BASE..., compressed, encrypted as
#             one stream, cut into DEST.000, DEST.001, ... of CHUNK bytes
#   v2volumes SRC_DIR BASE SUBDIR CHUNK VOL: a GNU multi-volume tar of
#             CHUNK KiB volumes VOL.000, VOL.001, ...
#   v2chunk   IN OUT MODE (encrypt, gzip or plain): one volume as a chunk
#   v1        SRC DIR: DIR, a copy of the format 1 tree SRC
#
# The passphrase is the first line of the file PASSFILE. It reaches
# openssl enc as -pass file:, and the HMAC key is put together in bash
# (RFC 2104: the key padded to the digest's block, XORed with 0x36 and
# 0x5c, then two `openssl dgst` passes), so that it never appears in a
# process's arguments, as `openssl dgst -hmac PASS` would put it.
set -euo pipefail

enc() { openssl enc -e -aes-256-cbc -md md5 -pass "file:$PASSFILE"; }

hmac() {
	local block=64 pass= hex i byte b ipad= opad= mac
	case $ALGO in sha384 | sha512 | sha512-224 | sha512-256) block=128 ;; esac
	IFS= read -r pass <"$PASSFILE" || true
	hex=$(printf '%s' "$pass" | od -An -v -tx1 | tr -d ' \n')
	if ((${#hex} / 2 > block)); then
		hex=$(printf '%s' "$pass" | openssl dgst "-$ALGO" -binary | od -An -v -tx1 | tr -d ' \n')
	fi
	for ((i = 0; i < block; i++)); do
		byte=0
		if ((2 * i < ${#hex})); then byte=$((16#${hex:2*i:2})); fi
		printf -v b '\\x%02x' $((byte ^ 0x36))
		ipad+=$b
		printf -v b '\\x%02x' $((byte ^ 0x5c))
		opad+=$b
	done
	mac=$({
		printf "$opad"
		{
			printf "$ipad"
			cat "$F"
		} | openssl dgst "-$ALGO" -binary
	} | openssl dgst "-$ALGO" -r)
	printf '(stdin)= %s\n' "${mac%% *}" >"$F.hmac"
}

case $1 in
hmac) hmac ;;
v3file)
	mkdir -p "$(dirname "$DEST")"
	deref=()
	if [ -n "$DEREF" ]; then deref=(--dereference); fi
	tar -Pc --sparse "${deref[@]}" -C "$SRC_DIR" --xform "s:^$BASE:$SUBDIR\\0:" "$BASE" |
		$COMPRESS |
		if [ -n "$ENCRYPT" ]; then enc; else cat; fi |
		split -b "$CHUNK" -d -a 3 - "$DEST."
	;;
v2volumes)
	# The writer sent the volumes through a fifo; here each becomes a file
	# as tar asks for the next.
	tar -Pc --sparse -M -L "$CHUNK" -F 'mv "$TAR_ARCHIVE" "$TAR_ARCHIVE.$(printf %03d $((TAR_VOLUME - 2)))"' \
		-f "$VOL" -C "$SRC_DIR" --xform "s:^[^/]:$SUBDIR\\0:" "$BASE"
	mv "$VOL" "$VOL.$(printf %03d "$(find "$(dirname "$VOL")" -name "$(basename "$VOL").*" | wc -l)")"
	;;
v2chunk)
	case $MODE in
	encrypt) enc <"$IN" >"$OUT" ;;
	gzip) gzip -c <"$IN" >"$OUT" ;;
	plain) cp "$IN" "$OUT" ;;
	esac
	;;
v1)
	mkdir -p "$DIR"
	cp -rp "$SRC/." "$DIR/"
	;;
*)
	echo "legacy-backup.sh: unknown command $1" >&2
	exit 2
	;;
esac
