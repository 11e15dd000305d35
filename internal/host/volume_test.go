package host

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smallHost has a template t, an AppVM a, a disposable template dvm, a
// DispVM d and a StandaloneVM s.
func smallHost(t *testing.T) *Host {
	t.Helper()
	h := newHost(t)
	for _, c := range []struct {
		name, class string
		opts        VMOptions
	}{
		{"t", TemplateVM, VMOptions{Label: "black"}},
		{"a", AppVM, VMOptions{Label: "blue", Template: "t"}},
		{"dvm", AppVM, VMOptions{Label: "red", Template: "t", Props: map[string]string{"template_for_dispvms": "True"}}},
		{"d", DispVM, VMOptions{Label: "red", Template: "dvm"}},
		{"s", StandaloneVM, VMOptions{Label: "green"}},
	} {
		if err := h.CreateVM(c.name, c.class, c.opts); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func writeAt(t *testing.T, path string, off int64, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, r io.ReaderAt, off int64, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readPathAt(t *testing.T, path string, off int64, n int) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readAt(t, f, off, n)
}

func TestCreateVMVolumesPerClass(t *testing.T) {
	h := smallHost(t)
	want := map[string][]string{ // images per VM, in backup order
		"t": {"root", "private"}, "a": {"private"}, "dvm": {"private"}, "d": nil, "s": {"root", "private"},
	}
	dirs := map[string]string{"t": "vm-templates/t", "a": "appvms/a", "dvm": "appvms/dvm", "d": "appvms/d", "s": "appvms/s"}
	for vm, imgs := range want {
		infos, err := h.Volumes(vm)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range infos {
			if v.Path == "" {
				if exists(h.path(v.VID + ".img")) {
					t.Errorf("%s %s has an image but no save_on_stop", vm, v.Name)
				}
				continue
			}
			got = append(got, v.Name)
			if v.Path != h.path(dirs[vm], v.Name+".img") || v.Nominal != v.Size || v.Usage > 1<<20 || v.Running {
				t.Errorf("%s %s: %+v", vm, v.Name, v)
			}
		}
		if strings.Join(got, ",") != strings.Join(imgs, ",") {
			t.Errorf("%s images %v, want %v", vm, got, imgs)
		}
		if dir, err := h.VMDir(vm); err != nil || dir != h.path(dirs[vm]) || !exists(dir) {
			t.Errorf("VMDir(%s) = %q, %v", vm, dir, err)
		}
		if p, err := h.VMFSPath(vm); err != nil || !exists(p) {
			t.Errorf("vm-fs of %s: %q %v", vm, p, err)
		}
	}
	root, err := h.VolumeInfo("a", "root")
	if err != nil || root.Path != "" || !root.SnapOnStart || root.Source != "vm-templates/t/root" || root.Nominal != DefaultRootSize {
		t.Errorf("AppVM root: %+v %v", root, err)
	}
	if n, u := usage(t, h.path("vm-templates/t/root.img")); n != DefaultRootSize || u != 0 {
		t.Errorf("template root %d/%d", n, u)
	}

	// A StandaloneVM made from a template copies its root, sparsely.
	writeAt(t, h.path("vm-templates/t/root.img"), 5<<30, "template data")
	if err := h.CreateVM("s2", StandaloneVM, VMOptions{Label: "gray", Template: "t"}); err != nil {
		t.Fatal(err)
	}
	info, _ := h.VolumeInfo("s2", "root")
	if got := readPathAt(t, info.Path, 5<<30, 13); got != "template data" || info.Nominal != DefaultRootSize || info.Usage > 1<<20 {
		t.Errorf("cloned root: %q %+v", got, info)
	}
	if tmpl := mustDomain(t, mustLoad(t, h), "s2").Template(); tmpl != "" {
		t.Errorf("a StandaloneVM records no template, got %q", tmpl)
	}

	// Custom volumes.
	if err := h.AddVolume("a", "data", 1<<30); err != nil {
		t.Fatal(err)
	}
	wantErr(t, h.AddVolume("a", "data", 1<<30), ErrExists)
	v, err := h.VolumeInfo("a", "data")
	if err != nil || !v.SaveOnStop || v.Path != h.path("appvms/a/data.img") || v.Nominal != 1<<30 {
		t.Fatalf("custom volume %+v %v", v, err)
	}
	vols := mustDomain(t, mustLoad(t, h), "a").Volumes()
	if vols[len(vols)-1].Name != "data" {
		t.Error("custom volume not last")
	}
	if err := h.RemoveVolume("a", "data"); err != nil || exists(v.Path) {
		t.Fatalf("RemoveVolume: %v", err)
	}
	wantErr(t, h.RemoveVolume("a", "private"), ErrInvalid)
}

func TestResizeVolume(t *testing.T) {
	h := smallHost(t)
	img := h.path("appvms/a/private.img")
	writeAt(t, img, 0, "head")
	writeAt(t, img, 1<<30, "middle")
	if err := h.ResizeVolume("a", "private", 4<<30, false); err != nil {
		t.Fatal(err)
	}
	info, _ := h.VolumeInfo("a", "private")
	if info.Nominal != 4<<30 || info.Size != 4<<30 || info.Usage > 1<<20 {
		t.Errorf("grown: %+v", info)
	}
	orig := readFile(t, h.path(DBFile))
	wantErr(t, h.ResizeVolume("a", "private", 1<<20, false), ErrShrink)
	if !bytes.Equal(readFile(t, h.path(DBFile)), orig) {
		t.Error("refused shrink changed pedos.xml")
	}
	if n, _ := usage(t, img); n != 4<<30 {
		t.Error("refused shrink changed the image")
	}
	if err := h.ResizeVolume("a", "private", 1<<20, true); err != nil {
		t.Fatal(err)
	}
	info, _ = h.VolumeInfo("a", "private")
	if info.Nominal != 1<<20 || info.Size != 1<<20 || readPathAt(t, img, 0, 4) != "head" {
		t.Errorf("forced shrink: %+v", info)
	}
	// Running: growing acts on the working copy; shrinking is refused.
	if err := h.Start("a"); err != nil {
		t.Fatal(err)
	}
	if err := h.ResizeVolume("a", "private", 8<<20, false); err != nil {
		t.Fatal(err)
	}
	if n, _ := usage(t, img); n != 1<<20 {
		t.Errorf("committed image resized while running: %d", n)
	}
	if n, _ := usage(t, dirtyPath(img)); n != 8<<20 {
		t.Errorf("working copy %d", n)
	}
	wantErr(t, h.ResizeVolume("a", "private", 4<<20, true), ErrRunning)
	if err := h.Shutdown("a"); err != nil {
		t.Fatal(err)
	}
	if n, _ := usage(t, img); n != 8<<20 {
		t.Errorf("after shutdown %d", n)
	}
	// A volume without an image only changes its size.
	if err := h.ResizeVolume("a", "volatile", 20<<30, false); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.VolumeInfo("a", "volatile"); v.Size != 20<<30 {
		t.Error(v)
	}
}

func TestImportExportSparse(t *testing.T) {
	h := smallHost(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	chunks := map[int64][]byte{0: []byte("boot sector"), 40 << 20: bytes.Repeat([]byte("x"), 100000), 64<<20 - 5: []byte("tail!")}
	sparseFile(t, src, 64<<20, chunks)
	f, _ := os.Open(src)
	n, err := h.ImportVolume("s", "private", f)
	f.Close()
	if err != nil || n != 64<<20 {
		t.Fatalf("import: %d %v", n, err)
	}
	info, _ := h.VolumeInfo("s", "private")
	if info.Size != 64<<20 || info.Nominal != 64<<20 || info.Usage > 1<<20 {
		t.Errorf("imported: %+v", info)
	}
	dst := filepath.Join(dir, "export.img")
	if n, err := h.ExportVolume("s", "private", dst); err != nil || n != 64<<20 {
		t.Fatalf("export: %d %v", n, err)
	}
	if !bytes.Equal(readFile(t, dst), readFile(t, src)) {
		t.Fatal("export differs from import source")
	}
	if _, u := usage(t, dst); u > 1<<20 {
		t.Errorf("export not sparse: %d bytes allocated", u)
	}
	if _, err := h.ExportVolume("s", "private", dst); !errors.Is(err, os.ErrExist) {
		t.Errorf("export over an existing file: %v", err)
	}

	// A stream (not a file): zero blocks still become holes.
	stream := append(append([]byte("start"), make([]byte, 8<<20)...), []byte("end")...)
	n, err = h.ImportVolume("s", "root", bytes.NewReader(stream))
	if err != nil || n != int64(len(stream)) {
		t.Fatalf("stream import: %d %v", n, err)
	}
	info, _ = h.VolumeInfo("s", "root")
	if info.Size != int64(len(stream)) || info.Usage > 64<<10 || !bytes.Equal(readFile(t, info.Path), stream) {
		t.Errorf("stream import: %+v", info)
	}

	// An aborted import changes nothing and leaves no temp file.
	before := readFile(t, info.Path)
	im, err := h.BeginImport("s", "root")
	if err != nil {
		t.Fatal(err)
	}
	im.Write([]byte("garbage"))
	im.Abort()
	if !bytes.Equal(readFile(t, info.Path), before) {
		t.Error("aborted import changed the image")
	}
	if m, _ := filepath.Glob(h.path("appvms/s/.*")); len(m) != 0 {
		t.Errorf("temp files left: %v", m)
	}

	// A killed import's temp file (unlocked, older than a minute) goes at
	// the next import into the volume; a live import's (locked) stays.
	live, err := h.BeginImport("s", "root")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(live.f.Name(), old, old)
	dead := h.path("appvms/s/.root-import-123.img")
	os.WriteFile(dead, []byte("half an image"), 0o600)
	os.Chtimes(dead, old, old)
	if _, err := h.ImportVolume("s", "root", bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("a killed import's temp file stayed")
	}
	if _, err := os.Stat(live.f.Name()); err != nil {
		t.Errorf("a live import's temp file was removed: %v", err)
	}
	live.Abort()

	// Not into a running VM, and not into a volume without an image.
	h.Start("s")
	_, err = h.ImportVolume("s", "root", bytes.NewReader(stream))
	wantErr(t, err, ErrRunning)
	_, err = h.ImportVolume("a", "root", bytes.NewReader(stream))
	wantErr(t, err, ErrInvalid)
}

func TestStartShutdownCommittedState(t *testing.T) {
	h := smallHost(t)
	img := h.path("vm-templates/t/private.img")
	writeAt(t, img, 1<<20, "before")
	if h.IsRunning("t") || !h.IsRunning("dom0") {
		t.Fatal("initial run state")
	}
	if err := h.Start("t"); err != nil {
		t.Fatal(err)
	}
	if !h.IsRunning("t") || !h.Running("t") {
		t.Fatal("not running after Start")
	}
	wantErr(t, h.Start("t"), ErrRunning)
	info, err := h.VolumeInfo("t", "private")
	if err != nil || !info.Running || info.Path != img {
		t.Fatalf("running info %+v %v", info, err)
	}
	work, _ := h.WorkingPath("t", "private")
	if work != dirtyPath(img) {
		t.Fatalf("working path %q", work)
	}
	if _, u := usage(t, work); u > 1<<20 {
		t.Errorf("working copy not sparse: %d", u)
	}
	writeAt(t, work, 1<<20, "after!")
	if got := readPathAt(t, img, 1<<20, 6); got != "before" {
		t.Fatalf("committed image changed while running: %q", got)
	}
	// A backup opens the committed image; it stays the pre-start state
	// even when the VM shuts down while it is read.
	f, info, err := h.OpenVolume("t", "private")
	if err != nil || !info.Running {
		t.Fatal(info, err)
	}
	defer f.Close()
	wantErr(t, h.RemoveVM("t"), ErrRunning)
	if err := h.Shutdown("t"); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, f, 1<<20, 6); got != "before" {
		t.Errorf("open image changed under the reader: %q", got)
	}
	if got := readPathAt(t, img, 1<<20, 6); got != "after!" {
		t.Errorf("shutdown did not commit: %q", got)
	}
	if h.IsRunning("t") || exists(dirtyPath(img)) {
		t.Error("still running or working copy left")
	}
	wantErr(t, h.Shutdown("t"), ErrNotRunning)
	wantErr(t, h.Start("dom0"), ErrInvalid)

	// A shutdown that died after committing one volume is finished by the
	// next Shutdown.
	if err := h.Start("t"); err != nil {
		t.Fatal(err)
	}
	root := h.path("vm-templates/t/root.img")
	writeAt(t, dirtyPath(root), 0, "new root")
	writeAt(t, dirtyPath(img), 0, "new private")
	if err := os.Rename(dirtyPath(root), root); err != nil {
		t.Fatal(err)
	}
	if err := h.Shutdown("t"); err != nil {
		t.Fatal(err)
	}
	if readPathAt(t, root, 0, 8) != "new root" || readPathAt(t, img, 0, 11) != "new private" || h.IsRunning("t") {
		t.Error("interrupted shutdown not completed")
	}
	// DispVMs have no persistent volumes but still run.
	if err := h.Start("d"); err != nil || !h.IsRunning("d") {
		t.Fatal(err)
	}
	if err := h.Shutdown("d"); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveVM(t *testing.T) {
	h := smallHost(t)
	h.SetNotes("a", "notes")
	if err := h.RemoveVM("a"); err != nil {
		t.Fatal(err)
	}
	if exists(h.path("appvms/a")) || exists(h.path("vm-fs/a")) {
		t.Error("files left")
	}
	if _, err := mustLoad(t, h).Domain("a"); !errors.Is(err, ErrNoSuchVM) {
		t.Error(err)
	}
	wantErr(t, h.RemoveVM("a"), ErrNoSuchVM)
	// In use until its users are gone.
	wantErr(t, h.RemoveVM("dvm"), ErrInUse)
	for _, vm := range []string{"d", "dvm", "s", "t"} {
		if err := h.RemoveVM(vm); err != nil {
			t.Fatal(vm, err)
		}
	}
	if err := h.CreateVM("t", TemplateVM, VMOptions{Label: "black"}); err != nil {
		t.Fatal(err)
	}
	if q := mustDomain(t, mustLoad(t, h), "t").Qid(); q != 1 {
		t.Errorf("qid reused: %d", q)
	}
}
