package sparsetar

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// Formats 2 and 3 of the reference system stored a template's whole
// directory as one archive of its ".", with the names prefixed
// (`tar -C <dir> --xform s:^.:vm7/\0: .`): the members are "vm7/." and
// "vm7/./root.img", "vm7/./apps/…". The "." component is harmless there,
// but checkName refuses it everywhere, so these variants take a prefix
// ending in "/." and check only what follows it.

// ExtractDotTree is ExtractTree for such an archive: prefix is its top
// member ("vm7/."), and prefix+"/a" lands at dir/a.
func ExtractDotTree(r io.Reader, prefix, dir string, maxSize int64) error {
	if err := checkDotPrefix(prefix); err != nil {
		return err
	}
	return extractTree(r, &treeExtractor{prefix: prefix, dot: true, left: maxSize}, dir)
}

// ReadDotTree is ReadTree for such an archive. It also lists the regular
// files at the top of the tree (a template's images are there).
func ReadDotTree(r io.Reader, prefix string, maxSize int64) (int64, []string, error) {
	if err := checkDotPrefix(prefix); err != nil {
		return 0, nil, err
	}
	x := &treeExtractor{prefix: prefix, dot: true}
	n, err := readTree(r, x, maxSize)
	var top []string
	if m, ok := x.dst.(modelDst); ok && err == nil {
		for rel, k := range m {
			if k == 0 && !strings.Contains(rel, "/") {
				top = append(top, rel)
			}
		}
		slices.Sort(top)
	}
	return n, top, err
}

func checkDotPrefix(prefix string) error {
	dir, ok := strings.CutSuffix(prefix, "/.")
	if !ok {
		return fmt.Errorf("%w: %s does not end in \"/.\"", ErrUnsafeName, elide.Quote(prefix))
	}
	return checkName(dir)
}

// dotRel maps a member of a dot tree to a path relative to the root.
func (x *treeExtractor) dotRel(name string) (string, error) {
	if name == x.prefix {
		return ".", nil
	}
	rest, ok := strings.CutPrefix(name, x.prefix+"/")
	if !ok {
		return "", fmt.Errorf("%w: %s is outside %q", ErrUnsafeName, elide.Quote(name), x.prefix)
	}
	if err := checkName(rest); err != nil {
		return "", err
	}
	return rest, nil
}
