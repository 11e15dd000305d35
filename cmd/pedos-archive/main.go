// Command pedos-archive is a developer tool over the format 4 archive
// engine: it writes, lists and extracts archives of plain files, without a
// PedOS host. The bench and demo scripts use it; users use qvm-backup.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
)

const usage = `usage:
  pedos-archive create  -o ARCHIVE -p PASSFILE [-Z FILTER] [--scrypt-logn N] [--qubes-xml FILE] NAME=PATH...
  pedos-archive extract -i ARCHIVE -p PASSFILE -C DIR
  pedos-archive verify  -i ARCHIVE -p PASSFILE
  pedos-archive sample  -o IMAGE [--size BYTES] [--data BYTES]

NAME=PATH stores PATH as NAME: a directory as a tree (symlinks kept), a
file ending in .img as a sparse volume, anything else as a regular file.
PASSFILE holds the passphrase on its first line ("-" reads standard input).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if path := os.Getenv("PEDOS_CPUPROFILE"); path != "" {
		// For the bench: where the time goes.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if path := os.Getenv("PEDOS_TRACE"); path != "" {
		if f, err := os.Create(path); err == nil {
			trace.Start(f)
			defer trace.Stop()
		}
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		trace.Stop()
		pprof.StopCPUProfile()
		fmt.Fprintf(os.Stderr, "pedos-archive: error: %v\n", err)
		os.Exit(1)
	}
}

func run(cmd string, args []string) error {
	var err error
	switch cmd {
	case "create":
		err = create(args)
	case "extract":
		err = extract(args, false)
	case "verify":
		err = extract(args, true)
	case "sample":
		err = sample(args)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	return err
}

func readPassphrase(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("a passphrase file is required (-p FILE, or -p - for standard input)")
	}
	in := io.Reader(os.Stdin)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	// Bounded: a file with no line end (/dev/zero) must not be read into
	// memory without end.
	const limit = 64 << 10
	data, err := io.ReadAll(io.LimitReader(in, limit))
	if err != nil {
		return nil, err
	}
	line, _, found := strings.Cut(string(data), "\n")
	if !found && len(data) == limit {
		return nil, fmt.Errorf("passphrase file %s: no line end in its first 64 KiB", path)
	}
	return []byte(line), nil
}

func create(args []string) error {
	fs := flag.NewFlagSet("create", flag.ExitOnError)
	out := fs.String("o", "", "archive to write")
	passFile := fs.String("p", "", "passphrase file")
	filter := fs.String("Z", "gzip", "compression filter (none to store)")
	logN := fs.Int("scrypt-logn", int(scryptenc.DefaultParams.LogN), "scrypt cost: log2(N)")
	qubesXML := fs.String("qubes-xml", "", "qubes.xml to store (default: an empty VM database)")
	fs.Parse(args)
	pass, err := readPassphrase(*passFile)
	if err != nil {
		return err
	}
	db := []byte("<qubes>\n  <domains/>\n</qubes>\n")
	if *qubesXML != "" {
		if db, err = os.ReadFile(*qubesXML); err != nil {
			return err
		}
	}
	if *out == "" {
		return errors.New("-o ARCHIVE is required")
	}
	// Never leave a partial file that looks like a finished archive.
	f, err := os.CreateTemp(filepath.Dir(*out), ".pedos-archive-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	params := scryptenc.DefaultParams
	params.LogN = uint8(*logN)
	w, err := archive.NewWriter(f, archive.WriterOptions{Passphrase: pass, Compression: *filter, Params: params})
	if err != nil {
		return err
	}
	expected := []archive.ExpectedFile{{Name: archive.QubesXMLName, Size: int64(len(db))}}
	for _, spec := range fs.Args() {
		name, path, _ := strings.Cut(spec, "=")
		expected = append(expected, archive.ExpectedFile{Name: name, Size: allocated(path)})
	}
	w.Expect(expected...)
	if err := w.AddBytes(archive.QubesXMLName, db); err != nil {
		return err
	}
	for _, spec := range fs.Args() {
		name, path, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("%q is not NAME=PATH", spec)
		}
		if err := w.AddFile(name, func(dst io.Writer) error { return storePath(dst, name, path) }); err != nil {
			w.Abort(err)
			w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(f.Name(), *out)
}

// allocated is what a regular file at path holds on disk (its holes are
// not stored), 0 for anything else: a hint for deriving keys ahead.
func allocated(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return min(fi.Size(), st.Blocks*512)
	}
	return fi.Size()
}

func storePath(dst io.Writer, name, path string) error {
	tw := sparsetar.NewWriter(dst)
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		err = tw.AddTree(name, path)
	case strings.HasSuffix(name, ".img"):
		var f *os.File
		if f, err = os.Open(path); err == nil {
			_, err = tw.AddVolume(name, f)
			f.Close()
		}
	default:
		err = tw.AddFile(name, path)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

func extract(args []string, verifyOnly bool) error {
	fs := flag.NewFlagSet("extract", flag.ExitOnError)
	in := fs.String("i", "", "archive to read (- for standard input)")
	passFile := fs.String("p", "", "passphrase file")
	dir := fs.String("C", "", "directory to extract into")
	fs.Parse(args)
	pass, err := readPassphrase(*passFile)
	if err != nil {
		return err
	}
	src := os.Stdin
	if *in != "-" {
		if src, err = os.Open(*in); err != nil {
			return err
		}
		defer src.Close()
	}
	if !verifyOnly && *dir == "" {
		return errors.New("-C DIR is required")
	}
	r, err := archive.NewReader(src, archive.ReaderOptions{Passphrase: pass})
	if err != nil {
		return err
	}
	defer r.Close()
	if !verifyOnly {
		if err := os.WriteFile(filepath.Join(*dir, archive.QubesXMLName), r.QubesXML(), 0o644); err != nil {
			return err
		}
		if c := r.Companion(); c != nil { // a plain name, checked by the reader
			if err := os.WriteFile(filepath.Join(*dir, c.Name), c.Data, 0o644); err != nil {
				return err
			}
		}
	}
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := extractFile(f, *dir, verifyOnly); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		fmt.Println(f.Name)
	}
	return nil
}

// extractFile writes one stored file under dir (or reads it through, for
// verify). A tree's inner tar has entries below the file's name; anything
// else holds exactly one member of that name.
func extractFile(f *archive.File, dir string, verifyOnly bool) error {
	const limit = 1 << 40
	if verifyOnly {
		if strings.HasPrefix(f.Name, "dom0-home/") {
			_, err := io.Copy(io.Discard, f)
			return err
		}
		_, err := sparsetar.ExtractFile(f, f.Name, io.Discard, limit)
		return err
	}
	target := filepath.Join(dir, filepath.FromSlash(f.Name))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if strings.HasPrefix(f.Name, "dom0-home/") {
		return sparsetar.ExtractTree(f, f.Name, target, limit)
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	sw := sparsetar.NewSparseWriter(out)
	if _, err := sparsetar.ExtractFile(f, f.Name, sw, limit); err != nil {
		return err
	}
	if err := sw.Close(); err != nil {
		return err
	}
	return out.Close()
}
