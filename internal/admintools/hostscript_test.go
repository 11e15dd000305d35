package admintools_test

// Script commands that edit a host's files as a user or another program
// would: pedos.xml edited by hand, a database written elsewhere.

import (
	"os"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// replace FILE OLD NEW replaces the first OLD in FILE with NEW; it fails
// when FILE holds no OLD, so that an edit cannot silently miss.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	data := ts.ReadFile(args[0])
	if !strings.Contains(data, args[1]) {
		ts.Fatalf("%s holds no %q", args[0], args[1])
	}
	data = strings.Replace(data, args[1], args[2], 1)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(data), 0o660))
}

// expand SRC DST writes SRC to DST with $VAR and ${VAR} replaced by the
// script's environment (a database that names $WORK paths).
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: expand SRC DST")
	}
	data := os.Expand(ts.ReadFile(args[0]), ts.Getenv)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(data), 0o660))
}
