// Package profile reads and writes backup profiles: YAML files under
// $PEDOS_ROOT/backup-profiles/NAME.yaml that say what to back up, where to,
// how to compress it and (optionally) with which passphrase.
//
// The keys are those of the reference system's profiles
// (/etc/qubes/backup/NAME.conf), so a hand-written Qubes profile loads
// unchanged, except that passphrase_vm is refused: PedOS does not ask a VM
// for the passphrase.
//
//	destination_vm: dom0           # or the VM to stream the backup to
//	destination_path: /backups     # an absolute directory for dom0, else a path or command in the VM
//	include: null                  # or a list; null means the default selection
//	exclude: [untrusted]           # optional
//	compression: true              # optional; true (gzip), false, or a filter name such as xz
//	passphrase_text: ...           # optional; the file must then be mode 0600
//	scrypt_logn: 18                # optional, PedOS only: scrypt cost 2^N per chunk (10-40)
//	incremental: true              # optional, PedOS only: store what changed since the last backup there
//	incremental_base: full         # optional, with incremental: last (the default) or full (differentials)
//	full_every: 7                  # optional, with incremental: a full backup after N increments (1-1000)
//
// include and exclude entries are VM names, @tag:NAME or @type:CLASS (the
// legacy $tag:/$type: spelling is read as @). Names are checked for syntax
// only: shell wildcards are refused rather than written raw, because the
// profile matches names literally.
//
// Parsing is strict, unlike the reference: an unknown key (a typo), a value
// of the wrong type or a passphrase a terminal could not type is an error
// that names the line, because a profile that silently backs up less than
// it says is found out only at restore time.
package profile
