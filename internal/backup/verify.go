package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/sparsetar"
)

// VMCheck is what reading a backup back found for one VM.
type VMCheck struct {
	Name  string
	Files int   // stored files read to their end
	Data  int64 // bytes of their content
}

// Verify reads a finished backup file back in full (header, every chunk
// decrypted and authenticated, every stream decompressed, every inner tar
// read to its end marker, the manifest matched) and reports per VM. It
// needs the plan's passphrase and VM list to name what it finds; a file
// of the archive that belongs to no planned VM is an error. Progress goes
// to r as for Run: updates, VMStarted and VMDone (once the archive has
// ended and proved complete), or VMFailed. A cancelled ctx stops it with
// an error wrapping ErrCancelled.
func Verify(ctx context.Context, p *Plan, res *Result, r progress.Reporter) ([]VMCheck, error) {
	if res == nil || res.Location == "" || res.Target.VM != "" {
		return nil, errors.New("backup: only a backup file in dom0 can be read back")
	}
	rep, closeRep := p.reporter(r)
	defer closeRep()
	f, err := os.Open(res.Location)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ar, err := archive.NewReader(f, archive.ReaderOptions{Passphrase: p.opts.Passphrase})
	if err != nil {
		return nil, fmt.Errorf("reading back %s: %w", res.Location, err)
	}
	defer ar.Close()
	checks := make([]VMCheck, len(p.VMs))
	for i, v := range p.VMs {
		checks[i].Name = v.Name
	}
	v := &verifyMeter{r: rep, start: time.Now(), total: res.Data}
	failed := func(i int, err error) ([]VMCheck, error) {
		err = fmt.Errorf("reading back %s: %w", res.Location, err)
		if ctx.Err() != nil {
			err = cancelled(ctx)
		}
		if i >= 0 {
			v.event(progress.VMFailed, p.VMs[i].Name, err)
		}
		return nil, err
	}
	cur := -1
	for {
		if ctx.Err() != nil {
			return failed(cur, ctx.Err())
		}
		file, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return failed(cur, err)
		}
		i := p.vmOf(file.Name)
		if i < 0 {
			return failed(cur, fmt.Errorf("%s belongs to no VM of this backup", file.Name))
		}
		if i != cur {
			cur = i
			v.event(progress.VMStarted, p.VMs[i].Name, nil)
		}
		v.vm, v.file = p.VMs[i].Name, file.Name
		n, err := readStored(file.Name, &countingReader{r: file, v: v})
		if err != nil {
			return failed(i, fmt.Errorf("%s: %w", file.Name, err))
		}
		checks[i].Files++
		checks[i].Data += n
	}
	// The manifest proved the whole archive complete: every VM is good.
	for _, c := range checks {
		v.event(progress.VMDone, c.Name, nil)
	}
	v.vm, v.file = "", ""
	v.emit(progress.Done)
	return checks, nil
}

// vmOf finds the planned VM a stored file belongs to by its backup-path.
func (p *Plan) vmOf(file string) int {
	for i, v := range p.VMs {
		if strings.HasPrefix(file, v.Path) && (strings.HasSuffix(v.Path, "/") || file == v.Path) {
			return i
		}
	}
	return -1
}

// readStored reads a stored file's inner tar to its end: one member of the
// file's name, or for the dom0 home any tree under it.
func readStored(name string, f io.Reader) (int64, error) {
	if !strings.HasPrefix(name, "dom0-home/") {
		return sparsetar.ExtractFile(f, name, io.Discard, 1<<50)
	}
	return sparsetar.ReadTree(f, name, 1<<50)
}

// verifyMeter reports reading back in the same units as the backup's
// progress: bytes of the stored files' tar streams.
type verifyMeter struct {
	r              progress.Reporter
	start          time.Time
	vm, file       string
	done, reported int64
	total          int64
}

func (v *verifyMeter) emit(stage progress.Stage) {
	v.reported = v.done
	v.r.Report(progress.Event{Stage: stage, VM: v.vm, File: v.file, Done: v.done, Total: v.total, Elapsed: time.Since(v.start)})
}

func (v *verifyMeter) event(kind progress.Kind, vm string, err error) {
	v.r.Report(progress.Event{Kind: kind, Stage: progress.Verifying, VM: vm, Done: v.done, Total: v.total, Elapsed: time.Since(v.start), Err: err})
}

type countingReader struct {
	r io.Reader
	v *verifyMeter
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.v.done += int64(n)
	if c.v.done-c.v.reported >= reportEvery {
		c.v.emit(progress.Verifying)
	}
	return n, err
}
