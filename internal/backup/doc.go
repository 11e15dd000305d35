// Package backup is the backup engine: NewPlan resolves what to back up and
// where, measures it and finds every problem before anything is written;
// Run streams the archive (format 4, see package archive) to the
// destination and publishes it only once it is complete.
//
// # Archive content
//
// As the reference writer (doc/format.md): qubes.xml, then
// for each selected VM other than dom0, by name, its save_on_stop volumes
// as vm<qid>/<volume>.img (the committed image: a running VM is stored as
// it was before its start), firewall.xml and notes.txt when it has them,
// or else a zero-length vm<qid>/empty; the dom0 user's home last, as
// dom0-home/<user> (symlinks kept as symlinks). qubes.xml is the host's
// whole pedos.xml (a copy: the live file is not touched) with, as the
// reference writer does, backup-content set on every domain (1 for the
// backed-up VMs, empty for the others), backup-path and backup-size on the
// backed-up ones, and their features preload-dispvm* other than
// preload-dispvm-max removed. The archive writer appends our completeness
// manifest.
//
// # backup-size
//
// Unlike the reference writer's estimate, a VM's backup-size is an upper
// bound of the bytes its .enc members hold: each stored file's inner tar
// stream is measured exactly when Run starts (volume data regions are
// found with SEEK_DATA/SEEK_HOLE, as the tar writer finds them), then
// allowed to grow by compression by 1/64 plus 64 KiB (incompressible data
// grows by about 0.01% with gzip, 0.4% with zstd, 1% with bzip2), and
// 128 bytes of scrypt overhead are added per chunk. For a compression
// program outside gzip, zstd, bzip2 and xz the bound is only as good as
// that program's worst case. The dom0 home is measured by walking it;
// files it gains during the backup are not covered.
//
// # Destinations
//
// Destination.Path, in dom0 (Destination.VM empty or "dom0"), is one of:
//   - "-": the archive goes to the io.Writer given to Run (stdout). Output
//     already written cannot be taken back: a failed run only returns its
//     error.
//   - a path, absolute or starting with "./" or "../": an existing
//     directory gets a new file qubes-backup-YYYY-MM-DDTHHMMSS (local
//     time; "-2", "-3"... if the name is taken); any other path is the
//     file to create, in an existing directory. An existing file is never
//     overwritten. The archive is written to a hidden temporary file in
//     the same directory, fsync'd and only then linked to its final name,
//     so a failed or cancelled run leaves nothing that looks like a
//     backup.
//   - anything else: a command line, run by /bin/sh -c in dom0 with the
//     archive on its stdin. It is trusted input (doc/reference.md E.22): it
//     comes from the dom0 user and is run as given, with all a shell can
//     do. Its first word must be a program on PATH (a program named by its
//     path can be run as "env /path/to/program ..."). The backup succeeds
//     only if the command exits 0 after reading the whole stream; a failed
//     or cancelled run kills the command and its process group, and what
//     the command wrote meanwhile is its business.
//
// With Destination.VM set, Path is the location line of the VM's
// qubes.Backup service (package qrexec): a directory in the VM, or a
// command line run there. The VM must be running. The service, too,
// publishes a file only when the stream is complete.
//
// # Progress
//
// Run reports Preparing, then Writing at the start of each stored file, at
// least once per MiB of its data and at its end, then Finishing (manifest,
// fsync, publishing) and Done. Done and Total count the uncompressed bytes
// of the stored files' tar streams (content plus tar headers, never
// holes), so Done grows evenly, never decreases, and ends equal to Total.
// Around each VM's files it reports VMStarted and VMDone, or VMFailed with
// the error that stopped the backup in them; the result's warnings come as
// Warning events. Every event goes through progress.Async: a slow consumer
// never holds up the archive, and has had every event when Run returns.
//
// # Problems and cancellation
//
// Each Problem lists its Resolutions: option changes that Resolution.Apply
// makes (a front end plans again with them), choices for the user and
// actions on the host. NewPlan, Run and Verify take a context; cancelled,
// they return an error wrapping ErrCancelled and ctx.Err().
//
// # Durations and sizes
//
// EstimatedArchiveSize assumes no compression gain: it is the sum of the
// backup-size bounds plus the outer tar framing, so checking the free
// space against it never lets a backup start that cannot fit.
// EstimatedDuration is a rough model: data bytes at an assumed rate per
// compression filter, or the scrypt key derivations (one per chunk, about
// 0.7 s of one core each at logN 18) spread over all cores, whichever is
// longer, plus one derivation for the header.
package backup
