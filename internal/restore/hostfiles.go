package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/chain"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/progress"
	"pedos.dev/backup/internal/publish"
	"pedos.dev/backup/internal/sparsetar"
)

// Storing each archive file of a VM being restored in its staging area,
// and the dom0 home in a hidden directory beside the user's files.

// file stores one archive file of pv in its staging area.
func (hr *hostRun) file(pv *PlannedVM, f io.Reader, name string, limit int64) error {
	v := pv.VM
	if v.Class == host.AdminVM {
		return hr.stageHome(pv, f, name, limit)
	}
	stage := hr.staged[pv]
	if stage == nil {
		var err error
		if stage, err = hr.h.StageVM(v.Class, hr.pool.Name); err != nil {
			return err
		}
		hr.staged[pv] = stage
	}
	base := path.Base(name)
	switch role, vol := roleOf(v, name); role {
	case roleTree:
		return hr.stageTree(pv, stage, f, name, limit)
	case roleImage:
		images := hr.images[pv]
		if err := noteImage(&images, vol); err != nil {
			return err
		}
		sw, out, err := stage.CreateImage(vol)
		if err != nil {
			return err
		}
		defer out.Close()
		var digests map[string]*chain.Digests
		if hr.chainFiles != nil {
			digests = hr.chainFiles.digests
		}
		err = extractImage(f, name, sw, limit, digests)
		if err == nil {
			err = sw.Close()
		}
		if err != nil {
			return err
		}
		hr.images[pv] = images
		return nil
	case roleSmall:
		_, kept, err := readSmall(f, name, limit, hr.plan.backup.Header.Version)
		if err != nil {
			return err
		}
		switch base {
		case host.FirewallFile:
			if err := stage.SetFirewall(kept); err != nil {
				return fmt.Errorf("its firewall cannot be restored: %w", err)
			}
		case host.NotesFile:
			if err := stage.SetNotes(string(kept)); err != nil {
				hr.warn(pv, fmt.Sprintf("%s: notes not restored: %v", pv.Target, err))
			}
		default:
			hr.extra[pv] = append(hr.extra[pv], host.Feature{Name: "menu-items", Value: strings.Join(strings.Fields(string(kept)), " ")})
		}
		return nil
	default:
		// The empty marker, an AppVM's root image, files of other systems
		// (icons, application lists of old formats): read, and so checked,
		// but not kept.
		if base != "empty" && !strings.HasSuffix(base, ".img") {
			hr.warn(pv, fmt.Sprintf("%s: %s is not restored (nothing here keeps it)", pv.Target, base))
		}
		return checkStored(f, name, limit)
	}
}

// stageTree restores a template stored whole ("vm7/.", formats 2 and 3):
// the tree goes to scratch space in the staging area, its images of
// volumes with data are adopted, the rest is dropped.
func (hr *hostRun) stageTree(pv *PlannedVM, stage *host.StagedVM, f io.Reader, name string, limit int64) error {
	scratch, err := stage.TempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	tree := filepath.Join(scratch, "tree")
	if err := sparsetar.ExtractDotTree(f, name, tree, limit); err != nil {
		return err
	}
	for _, vol := range host.SavedVolumes(pv.VM.Class, pv.VM.Volumes) {
		img := filepath.Join(tree, vol+".img")
		if _, err := os.Lstat(img); err != nil {
			continue
		}
		images := hr.images[pv]
		if err := noteImage(&images, vol); err != nil {
			return err
		}
		if err := stage.AdoptImage(vol, img); err != nil {
			return err
		}
		hr.images[pv] = images
	}
	return nil
}

// warn adds a warning to pv's result and reports it.
func (hr *hostRun) warn(pv *PlannedVM, w string) {
	hr.results[pv].Warnings = append(hr.results[pv].Warnings, w)
	if hr.ps != nil {
		hr.ps.event(progress.Warning, pv.VM.Name, nil, w)
	}
}

// homeStage is the dom0 home being restored.
type homeStage struct {
	pv       *PlannedVM
	tmp, dir string
	lock     *os.File // tmp, opened and flock'ed while we use it
	done     bool
}

// A dom0 home being restored is a hidden directory in the user's home,
// locked (flock on the directory) by the restoring process: made as
// .home-restore-<time>-<random>.new and renamed to .partial once locked,
// so that a .partial directory without a lock is one whose restore died
// (SIGKILL, a crash), which the next restore removes.
const (
	homeNewSuffix     = ".new"
	homePartialSuffix = ".partial"
)

// stageHomeDir makes and locks the directory a home is restored into.
func stageHomeDir(home, dirName string) (dir string, lock *os.File, err error) {
	fresh, err := os.MkdirTemp(home, "."+dirName+"-*"+homeNewSuffix)
	if err != nil {
		return "", nil, err
	}
	lock, err = os.Open(fresh)
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	dir = strings.TrimSuffix(fresh, homeNewSuffix) + homePartialSuffix
	if err == nil {
		err = os.Rename(fresh, dir)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(fresh)
		return "", nil, err
	}
	return dir, lock, nil
}

// removeStaleHomes removes from home the partial dom0 homes of restores
// that died: .partial directories whose lock is free, and .new ones an
// hour old. A live restore's is locked and never touched. It returns the
// paths it removed.
func removeStaleHomes(home string) []string {
	var removed []string
	partial, _ := filepath.Glob(filepath.Join(home, ".home-restore-*"+homePartialSuffix))
	for _, dir := range partial {
		f, err := os.Open(dir)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.IsDir() && unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if os.RemoveAll(dir) == nil {
				removed = append(removed, dir)
			}
		}
		f.Close()
	}
	fresh, _ := filepath.Glob(filepath.Join(home, ".home-restore-*"+homeNewSuffix))
	for _, dir := range fresh {
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > time.Hour && os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

// release removes the staged home unless it was moved into place, and
// drops its lock.
func (hs *homeStage) release() {
	if !hs.done {
		os.RemoveAll(hs.tmp)
		hs.done = true
	}
	if hs.lock != nil {
		hs.lock.Close()
		hs.lock = nil
	}
}

func (hr *hostRun) stageHome(pv *PlannedVM, f io.Reader, name string, limit int64) error {
	if hr.home != nil {
		return fmt.Errorf("%w: a second dom0 home %s", archive.ErrUnexpectedMember, name)
	}
	d0, err := hr.h.Dom0()
	if err != nil {
		return err
	}
	now := time.Now
	if hr.opts.Now != nil {
		now = hr.opts.Now
	}
	dirName := "home-restore-" + now().Format("2006-01-02-150405")
	// The final name is chosen when the home is complete (finishDom0):
	// another restore in the same second may take this one meanwhile.
	hs := &homeStage{pv: pv, dir: filepath.Join(d0.Home, dirName)}
	if err := os.MkdirAll(d0.Home, 0o700); err != nil {
		return err
	}
	// A directory of its own, even for two restores in the same second.
	if hs.tmp, hs.lock, err = stageHomeDir(d0.Home, dirName); err != nil {
		return err
	}
	hr.home = hs
	if err := sparsetar.ExtractTree(f, name, hs.tmp, limit); err != nil {
		return err
	}
	hr.results[pv].Target = hs.dir
	return nil
}

// finishDom0 moves a complete dom0 home into place, under the first free
// name of home-restore-<time>, home-restore-<time>-2, ... (as a backup
// names its file): two restores in the same second both succeed.
func (hr *hostRun) finishDom0() {
	hs := hr.home
	if hs == nil || hs.done {
		return
	}
	dir, err := renameFree(hs.tmp, hs.dir)
	if err != nil {
		hr.fail(hs.pv, fmt.Errorf("moving the dom0 home into place: %w", err))
		return
	}
	hs.dir, hs.done = dir, true
	hs.release()
	hr.results[hs.pv].Target = dir
	hr.results[hs.pv].Outcome = OutcomeRestored
	hr.report(progress.VMDone, hs.pv, nil)
}

// renameFree renames the directory tmp to the first of base, base-2,
// base-3, ... that does not exist, never replacing one (rename(2) would
// replace an empty directory), and returns the name it took.
func renameFree(tmp, base string) (string, error) {
	for i := 1; i <= 1000; i++ {
		dir := publish.Suffixed(base, i)
		err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			// A file system without RENAME_NOREPLACE: check, then rename;
			// only a race can defeat it.
			if _, lerr := os.Lstat(dir); lerr == nil {
				continue
			}
			err = os.Rename(tmp, dir)
		}
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			continue
		}
		return dir, err
	}
	return "", fmt.Errorf("no free name for %s", base)
}
