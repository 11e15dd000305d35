package restore

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/host"
	"pedos.dev/backup/internal/legacy"
	"pedos.dev/backup/internal/sparsetar"
)

// Verify, extract and restore read a VM's stored files alike: each file
// has a role (roleOf), and each role its reading and its checks, so that
// what verify calls intact is what extract and restore take.

type fileRole int

const (
	roleOther fileRole = iota // read and checked, not kept by a restore
	roleTree                  // a template stored whole ("vm7/."), formats 2 and 3
	roleImage                 // the image of a volume with data: one regular file
	roleSmall                 // firewall.xml, notes.txt, whitelisted-appmenus.list
)

// maxSmallFile bounds the small files restore keeps.
const maxSmallFile = 1 << 20

// roleOf says what a stored file of v is, and for an image its volume.
func roleOf(v *VM, name string) (fileRole, string) {
	base := path.Base(name)
	vol, isImage := strings.CutSuffix(base, ".img")
	switch {
	case isDotTree(name):
		return roleTree, ""
	case isImage && slices.Contains(host.SavedVolumes(v.Class, v.Volumes), vol):
		return roleImage, vol
	case base == host.FirewallFile, base == host.NotesFile, base == "whitelisted-appmenus.list":
		return roleSmall, ""
	}
	return roleOther, ""
}

// noteImage records in seen, a VM's volumes whose image came, that vol's
// came, refusing a second.
func noteImage(seen *[]string, vol string) error {
	if slices.Contains(*seen, vol) {
		return fmt.Errorf("%w: a second image of volume %s", archive.ErrUnexpectedMember, vol)
	}
	*seen = append(*seen, vol)
	return nil
}

// missingImage says which volume of v that the backup says has data got
// no image from the archive (images lists those that did), if any.
func missingImage(v *VM, images []string) error {
	saved := host.SavedVolumes(v.Class, v.Volumes)
	for _, vol := range v.Volumes {
		if vol.SaveOnStop && slices.Contains(saved, vol.Name) && !slices.Contains(images, vol.Name) {
			return fmt.Errorf("%w: VM %s: the archive has no image of its volume %s", archive.ErrIncomplete, v.Name, vol.Name)
		}
	}
	return nil
}

// checkImages is missingImage for every VM the pass read (verify and
// extract; a restore checks each VM as it completes).
func (ps *pass) checkImages() error {
	for _, pv := range ps.vms {
		if pv.VM.Class == host.AdminVM || ps.reports[pv.VM].Files == 0 {
			continue
		}
		if err := missingImage(pv.VM, ps.images[pv.VM]); err != nil {
			ps.reports[pv.VM].Err = err
			return err
		}
	}
	return nil
}

// treeImages notes the images a template stored whole holds: its
// top-level files named after volumes with data.
func (ps *pass) treeImages(v *VM, files []string) error {
	seen := ps.images[v]
	for _, vol := range host.SavedVolumes(v.Class, v.Volumes) {
		if slices.Contains(files, vol+".img") {
			if err := noteImage(&seen, vol); err != nil {
				return err
			}
		}
	}
	ps.images[v] = seen
	return nil
}

// readSmall reads a small file whole and checks it as a restore would keep
// it. content is as stored; kept is what a restore keeps (an old format's
// firewall converted to today's rules).
func readSmall(f io.Reader, name string, limit int64, version int) (content, kept []byte, err error) {
	var buf bytes.Buffer
	if _, err := sparsetar.ExtractFile(f, name, &buf, min(limit, maxSmallFile)); err != nil {
		return nil, nil, err
	}
	content, kept = buf.Bytes(), buf.Bytes()
	if path.Base(name) == host.FirewallFile {
		if version < 4 { // Qubes R1 to R3.2's format
			if kept, err = legacy.ConvertFirewall(content); err != nil {
				return nil, nil, fmt.Errorf("its firewall cannot be restored: %w", err)
			}
		}
		if _, err := host.ParseFirewall(kept); err != nil {
			return nil, nil, fmt.Errorf("its firewall cannot be restored: %w", err)
		}
	}
	return content, kept, nil
}

// checkFile reads a stored file of pv to its end with the checks of its
// role, keeping nothing: verification.
func (ps *pass) checkFile(pv *PlannedVM, f io.Reader, name string, limit int64) error {
	if pv.VM.Class == host.AdminVM {
		_, err := sparsetar.ReadTree(f, name, limit)
		return err
	}
	switch role, vol := roleOf(pv.VM, name); role {
	case roleImage:
		seen := ps.images[pv.VM]
		if err := noteImage(&seen, vol); err != nil {
			return err
		}
		ps.images[pv.VM] = seen
		_, err := sparsetar.ExtractFile(f, name, io.Discard, limit)
		return err
	case roleSmall:
		_, _, err := readSmall(f, name, limit, ps.b.Header.Version)
		return err
	case roleTree:
		_, files, err := sparsetar.ReadDotTree(f, name, limit)
		if err != nil {
			return err
		}
		return ps.treeImages(pv.VM, files)
	}
	return checkStored(f, name, limit)
}
