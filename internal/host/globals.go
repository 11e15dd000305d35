package host

// Global properties: the <properties> of <qubes>, with the defaults of
// qubes-core-admin's Qubes class.

type globalDef struct {
	kind  propKind
	ref   refKind
	def   func(db *DB) string
	check func(v string) error
}

var globalProps map[string]globalDef

func init() {
	is := func(v string) func(*DB) string { return func(*DB) string { return v } }
	pool := func(db *DB) string { v, _ := db.GlobalProp("default_pool"); return v }
	globalProps = map[string]globalDef{
		"default_template":         {kind: kRef, ref: refTemplate},
		"default_netvm":            {kind: kRef, ref: refNet},
		"default_dispvm":           {kind: kRef, ref: refDVM},
		"management_dispvm":        {kind: kRef, ref: refDVM},
		"clockvm":                  {kind: kRef, ref: refAny},
		"updatevm":                 {kind: kRef, ref: refAny},
		"default_guivm":            {kind: kRef, ref: refAny, def: is("dom0")},
		"default_audiovm":          {kind: kRef, ref: refAny, def: is("dom0")},
		"default_kernel":           {kind: kText, check: noSlash},
		"default_qrexec_timeout":   {kind: kPosInt, def: is("60")},
		"default_shutdown_timeout": {kind: kPosInt, def: is("60")},
		"stats_interval":           {kind: kPosInt, def: is("3")},
		"check_updates_vm":         {kind: kBool, def: is("True")},
		"default_pool":             {kind: kPool, def: (*DB).defaultPool},
		"default_pool_private":     {kind: kPool, def: pool},
		"default_pool_root":        {kind: kPool, def: pool},
		"default_pool_volatile":    {kind: kPool, def: pool},
		"default_pool_kernel":      {kind: kPool, def: pool},
	}
}

func (db *DB) globalNode(name string) *node {
	if ps := db.root.child("properties"); ps != nil {
		return ps.keyed("property", "name", name)
	}
	return nil
}

// GlobalProps returns the stored global properties in file order.
func (db *DB) GlobalProps() []Property {
	var out []Property
	if ps := db.root.child("properties"); ps != nil {
		for _, n := range ps.children("property") {
			v := n.Text
			if v == "" && n.hasAttr("ref") {
				v = n.attr("ref")
			}
			out = append(out, Property{n.attr("name"), v})
		}
	}
	return out
}

// GlobalProp returns a global property and whether it is the default.
func (db *DB) GlobalProp(name string) (value string, isDefault bool) {
	if n := db.globalNode(name); n != nil {
		if n.Text == "" && n.hasAttr("ref") {
			return n.attr("ref"), false
		}
		return n.Text, false
	}
	if def, ok := globalProps[name]; ok && def.def != nil {
		return def.def(db), true
	}
	return "", true
}

// SetGlobalProp sets a global property (default_template, default_netvm,
// ...) after checking it as SetProp does. On error nothing changes.
func (db *DB) SetGlobalProp(name, value string) error {
	where := "global " + name
	if !propNameRE.MatchString(name) {
		return errorf(ErrInvalid, "%s: invalid property name", where)
	}
	if err := checkText(where, value); err != nil {
		return err
	}
	def := globalProps[name]
	v, err := db.normalize(def.kind, def.check, value)
	if err != nil {
		return errorf(ErrInvalid, "%s: %v", where, err)
	}
	return db.changeGlobal(name, func() {
		n := db.globalNode(name)
		if n == nil {
			n = elem("property", "name", name)
			ps := db.root.ensure("properties", topOrder)
			ps.Kids = append(ps.Kids, n)
		}
		n.delAttr("ref")
		n.Text = v
	})
}

// ResetGlobalProp deletes a global property so that its default applies.
func (db *DB) ResetGlobalProp(name string) error {
	return db.changeGlobal(name, func() {
		if ps := db.root.child("properties"); ps != nil {
			ps.remove(db.globalNode(name))
		}
	})
}

func (db *DB) changeGlobal(name string, edit func()) error {
	saved := db.root.child("properties")
	if saved != nil {
		saved = saved.clone()
	}
	edit()
	if err := db.checkGlobal(name); err != nil {
		if saved != nil {
			*db.root.child("properties") = *saved
		} else {
			db.root.remove(db.root.child("properties"))
		}
		return err
	}
	return nil
}

func (db *DB) checkGlobal(name string) error {
	where := "global " + name
	def, known := globalProps[name]
	n := db.globalNode(name)
	if !known || n == nil {
		return nil
	}
	v, _ := db.GlobalProp(name)
	if _, err := db.normalize(def.kind, def.check, v); err != nil {
		return errorf(ErrInvalid, "%s: %v", where, err)
	}
	if err := db.checkRef(where, v, def.ref); err != nil {
		return err
	}
	if name == "default_netvm" {
		for _, d := range db.Domains() {
			if err := d.netLoop(); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsRefGlobal reports whether a global property names a VM
// (default_netvm, default_template, clockvm, ...).
func IsRefGlobal(name string) bool { return globalProps[name].kind == kRef }
