package admintools

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"pedos.dev/backup/internal/cli"
	"pedos.dev/backup/internal/host"
)

// QvmCreate is qvm-create: add a VM.
func QvmCreate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{tool: "qvm-create", stdin: stdin, stdout: stdout, stderr: stderr}
	var (
		class, template, label string
		poolName               string
		standalone, disp       bool
		props                  []string
	)
	c := newRoot(e, "[options] --label LABEL VMNAME",
		"Create a new, halted VM. An AppVM (the default class) or DispVM takes its root from its\n"+
			"template (default: the global default_template or default_dispvm); a StandaloneVM or\n"+
			"TemplateVM given --template starts with a copy of that VM's root image.")
	f := c.Flags()
	f.StringVarP(&class, "class", "C", host.AppVM, "the `CLASS` of the new VM: AppVM, TemplateVM, StandaloneVM or DispVM")
	f.BoolVar(&standalone, "standalone", false, "shorthand for --class StandaloneVM")
	f.BoolVar(&disp, "disp", false, "shorthand for --class DispVM")
	f.StringVarP(&template, "template", "t", "", "the `TEMPLATE` (for a StandaloneVM or TemplateVM: the VM whose root to copy)")
	f.StringVarP(&label, "label", "l", "", "the colour `LABEL` (required): red, orange, yellow, green, gray, blue, purple, black")
	f.StringArrayVarP(&props, "property", "p", nil, "set a property of the new VM (`NAME=VALUE`; repeatable)")
	f.StringVarP(&poolName, "pool", "P", "", "put the new VM's volumes in the file pool `POOL` (default: the global default_pool);\nan AppVM's root stays a snapshot of its template's, in the template's pool")
	c.Args = nargs(1, 1, "VMNAME")
	c.RunE = func(cmd *cobra.Command, a []string) error {
		name := a[0]
		switch {
		case standalone && disp:
			return cli.Usagef("--standalone and --disp exclude each other")
		case (standalone || disp) && cmd.Flags().Changed("class"):
			return cli.Usagef("--class cannot be combined with --standalone or --disp")
		case standalone:
			class = host.StandaloneVM
		case disp:
			class = host.DispVM
		}
		canon, ok := canonicalClass(class, false)
		if !ok {
			return cli.WithHint(fmt.Errorf("unknown VM class %q", class),
				"the classes are AppVM, TemplateVM, StandaloneVM and DispVM")
		}
		opts := host.VMOptions{Label: label, Template: template, Props: map[string]string{}, Pool: poolName}
		for _, p := range props {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return cli.Usagef("--property %q: want NAME=VALUE", p)
			}
			opts.Props[k] = v
		}
		if label == "" {
			var names []string
			for _, l := range host.StandardLabels {
				names = append(names, l.Name)
			}
			return cli.WithHint(cli.Usagef("--label is required"), "the labels are %s", strings.Join(names, ", "))
		}
		if err := host.ValidateName(name); err != nil {
			return err
		}
		h, err := e.host()
		if err != nil {
			return err
		}
		db, err := h.Load()
		if err != nil {
			return err
		}
		if err := checkLabel(db, label); err != nil {
			return err
		}
		if _, err := db.Domain(name); err == nil {
			return cli.WithHint(fmt.Errorf("a VM named %s already exists", name), "choose another name")
		}
		if template != "" {
			if _, err := domain(db, template); err != nil {
				return err
			}
		}
		if poolName != "" {
			if err := poolFlag(db, poolName); err != nil {
				return err
			}
		}
		// A scratch VM of the class tells which properties it has: the
		// host would store a misspelt one as a new property.
		scratch, err := db.Clone().NewDomain(name, canon)
		if err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(opts.Props)) {
			if !hasProp(scratch, k) {
				return cli.WithHint(fmt.Errorf("%s %s has no property %q", article(canon), canon, k),
					"'qvm-prefs VM' lists the properties of an existing VM")
			}
		}
		return h.CreateVM(name, canon, opts)
	}
	return execute(e, c, args)
}

func article(word string) string {
	if strings.ContainsRune("AEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}
