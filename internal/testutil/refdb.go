package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// ReferencePedosXML is reference-pedos.xml: a database as the reference
// system's own code writes qubes.xml (lxml, R4 schema, attributes in its
// order), with $WORK replaced by work. Its file pool varlibqubes is
// work/qubes (the database's own directory, as /var/lib/qubes is on
// Qubes), disk2 is work/disk2 and holds the StandaloneVM vault; the
// TemplateVM fedora-41 and its AppVM work are in varlibqubes; the
// StandaloneVM sys-usb is in the LVM pool vm-pool, which PedOS cannot
// read; every VM has a kernel volume in the linux-kernel pool. Volumes of
// 4 MiB (root) and 2 MiB (private).
func ReferencePedosXML(t testing.TB, work string) []byte {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(self), "reference-pedos.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(os.Expand(string(data), func(k string) string {
		if k == "WORK" {
			return work
		}
		return "$" + k
	}))
}
