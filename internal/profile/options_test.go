package profile

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"pedos.dev/backup/internal/backup"
)

// Options and FromOptions are each other's inverse for what a profile
// holds, also through a saved and loaded file.
func TestOptionsRoundTrip(t *testing.T) {
	root := t.TempDir()
	for _, opts := range []backup.Options{
		{VMs: []string{"work", "@tag:backup"}, Exclude: []string{"vault"}, Compression: "gzip", ScryptLogN: 14,
			Destination: backup.Destination{Path: "/backups"}},
		{Compression: "none", Destination: backup.Destination{Path: "/b", VM: "dom0"}},
		{Compression: "xz", Destination: backup.Destination{Path: "cat > /mnt/b", VM: "backup-vm"}},
		{Compression: "gzip", Destination: backup.Destination{Path: "/b"}, Incremental: true},
		{Compression: "gzip", Destination: backup.Destination{Path: "/b"}, Incremental: true, FromFull: true, FullEvery: 3},
	} {
		p, err := FromOptions(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := Save(root, "job", p); err != nil {
			t.Fatal(err)
		}
		loaded, err := Load(root, "job")
		if err != nil {
			t.Fatal(err)
		}
		got, err := loaded.Options()
		if err != nil {
			t.Fatal(err)
		}
		want := opts
		if want.Destination.VM == "" {
			want.Destination.VM = Dom0
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestFromOptions(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	// A relative dom0 path is made absolute; an empty selection is the
	// default one (include: null); gzip is the default compression.
	p, err := FromOptions(backup.Options{VMs: []string{}, Compression: "gzip", Destination: backup.Destination{Path: "./backups"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{DestinationVM: Dom0, DestinationPath: filepath.Join(dir, "backups")}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("profile %v, want %v", p, want)
	}
	// Standard output and a dom0 command cannot be saved.
	for _, dst := range []string{"-", "cat > /tmp/x"} {
		_, err := FromOptions(backup.Options{Destination: backup.Destination{Path: dst}})
		if !errors.Is(err, ErrDestination) {
			t.Errorf("%q: %v", dst, err)
		}
	}
	// What Save would refuse is refused here.
	if _, err := FromOptions(backup.Options{VMs: []string{"work*"}, Destination: backup.Destination{Path: "/b"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("wildcard: %v", err)
	}
	// include: [] selects nothing: no options.
	if _, err := (Profile{DestinationVM: Dom0, DestinationPath: "/b", Include: []string{}}).Options(); !errors.Is(err, ErrNoSelection) {
		t.Errorf("include: []: %v", err)
	}
	// The passphrase stays the front end's business.
	o, err := (Profile{DestinationVM: Dom0, DestinationPath: "/b", Passphrase: []byte("secret words")}).Options()
	if err != nil || o.Passphrase != nil || o.Compression != "gzip" {
		t.Errorf("options %+v, %v", o, err)
	}
}
