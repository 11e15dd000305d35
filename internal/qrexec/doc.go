// Package qrexec runs the VM-side halves of backup and restore: the services
// qubes.Backup and qubes.Restore of the reference system (doc/reference.md A.8,
// B.7), and the transport that reaches them.
//
// dom0 side: OpenBackupSink returns a Sink that streams a backup into a VM;
// OpenRestoreSource returns the stream a VM sends back. Both talk to a
// Transport. Local is the transport of the PedOS host: it runs the service
// in a child process (this very program, re-executed; see MaybeServe) whose
// working directory, the VM's "filesystem", is a host directory.
//
// # The services, as seen from the VM
//
// Both read one location line first (at most MaxLocation bytes, CR/LF
// removed), as in the reference system.
//
// qubes.Backup: when the location names an existing directory in the VM's
// filesystem, the stream is written there as qubes-backup-YYYY-MM-DDTHHMMSS
// (VM local time, time of the start of the stream). It is first written to
// a hidden temporary file in that directory, fsync'd, and only then linked
// to its final name, so that an aborted backup leaves nothing behind. An
// existing file is never overwritten: when the name is taken, "-2", "-3", ...
// is appended. Otherwise the first shell word of the location must be an
// executable program, and the whole line is run by /bin/sh -c with the
// stream on its stdin; its stdout joins its stderr. Anything else fails with
// "Invalid command X".
//
// qubes.Restore: when the location names a regular file in the VM's
// filesystem, its bytes are the stream; otherwise the line is a command, as
// above, whose stdout is the stream. The reference system also reads a
// second line listing the wanted archive members; we stream everything.
//
// Object storage: a location s3://BUCKET/PREFIX/ makes qubes.Backup upload
// the stream as a new object PREFIX/qubes-backup-YYYY-MM-DDTHHMMSS (replies
// "ready s3://..." and "saved s3://..."), and s3://BUCKET/KEY makes
// qubes.Restore stream that object, resuming after dropped connections;
// package objstore does the S3 side with the VM's own configuration, which
// never passes through dom0. An abort aborts the multipart upload.
//
// Two services of ours take the same location line and read nothing
// else: pedos.BackupCheck replies "ok" or "problem KIND MESSAGE" for a
// destination, at plan time (s3:// locations: configuration, endpoint,
// credentials, bucket); pedos.BackupList lists the qubes-backup-* files of
// a directory or objects under a prefix, each as a line "entry SIZE
// UNIXTIME N NAME" followed by its first N bytes (N <= ListHeadSize), then
// "end". pedos.Browse lists any directory, for the GUI's "..." buttons
// that browse a VM's files from dom0 (the reference system opens a dialog
// inside the VM instead): a line "dir - NAME" or "file SIZE NAME" per
// entry, directories first, hidden ones left out, then "end".
//
// Paths are resolved inside the VM's filesystem (an absolute path is taken
// from its top) through os.Root: neither ".." nor a symbolic link can lead
// out of it. Commands are not confined: they run as host programs, in the
// VM's directory, with PEDOS_VM and HOME set to the VM's values.
//
// # Trust
//
// The location line comes from dom0 and is trusted input, exactly as in the
// reference system (doc/reference.md E.22): a command line is run by a shell,
// with all that implies. Never build it from anything a VM supplied. What
// comes back from the VM (its replies, its stderr, the file name it reports)
// is not trusted: dom0 reads bounded amounts of it and sanitises it before it
// reaches a message.
//
// # Wire protocol
//
// The reference system sends the backup as raw bytes after the location
// line, and the VM service treats EOF as the end of the backup. Then a dom0
// that fails or dies mid-way leaves a truncated file under a complete
// backup's name. Our stream to the VM is therefore framed, so that its end
// is explicit: after the location line come frames of a 4-byte big-endian
// length n > 0 and n bytes; a zero length ends the backup. EOF before that
// marker, or SIGTERM, means abort: the service removes its temporary file,
// or kills its command and everything the command started.
//
// Before the first frame, qubes.Backup replies "ready PATH\n" once it has
// created its file (PATH is where the backup will be; a command gets just
// "ready\n"), so that a bad location fails before dom0 produces any data;
// after the end marker it replies "saved PATH\n" with the final name, or
// "done\n" once the command succeeded. Any failure is reported on stderr
// and by a non-zero exit status (a command's own status is passed on).
//
// qubes.Restore replies with the raw stream; its exit status tells dom0
// whether the stream was complete, since EOF alone cannot.
package qrexec
