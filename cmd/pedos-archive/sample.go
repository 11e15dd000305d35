package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// sample writes a sparse disk image like a VM's: data in regions spread
// over the image, the rest holes. The bench and demo scripts use it as
// their data set. Kind "halves": eight regions, alternately incompressible
// and text-like. Kind "mixed", more like a used file system: 64 regions in
// turn incompressible, text, allocated zero blocks (written zeros, which
// SEEK_DATA reports as data) and text again.
func sample(args []string) error {
	fs := flag.NewFlagSet("sample", flag.ExitOnError)
	out := fs.String("o", "", "image to write")
	size := fs.String("size", "2G", "nominal image size")
	data := fs.String("data", "512M", "bytes of data in it")
	kind := fs.String("kind", "halves", "halves or mixed")
	seedByte := fs.Int("seed", 1, "seed of the random content (images with other seeds differ)")
	fs.Parse(args)
	regions := int64(8)
	switch *kind {
	case "halves":
	case "mixed":
		regions = 64
	default:
		return fmt.Errorf("sample: unknown kind %q (halves or mixed)", *kind)
	}
	total, err := parseSize(*size)
	if err != nil {
		return err
	}
	used, err := parseSize(*data)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(total); err != nil {
		return err
	}
	region := used / regions &^ 4095
	seed := rand.NewChaCha8([32]byte{byte(*seedByte)})
	rng := rand.New(seed)
	buf := make([]byte, 1<<20)
	for i := int64(0); i < regions; i++ {
		off := i * (total / regions)
		for done := int64(0); done < region; done += int64(len(buf)) {
			chunk := buf[:min(int64(len(buf)), region-done)]
			switch {
			case i%2 == 0 && (*kind == "halves" || i%4 == 0):
				seed.Read(chunk)
			case i%4 == 2:
				clear(chunk)
			default:
				fillText(chunk, rng)
			}
			if _, err := f.WriteAt(chunk, off+done); err != nil {
				return err
			}
		}
	}
	return f.Close()
}

var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there would their we him been has when who will more
no if out so said what up its about into than them can only other new some could time these two may
then do first any my now such like our over man me even most made after also did many before must
through back years where much your way well down should because each just those people how too little
state good very make world still own see men work long get here between both life being under never
day same another know while last might us great old year off come since against go came right used
take three qube template volume backup restore firewall network private root kernel label`)

// fillText writes word salad: compressible about 3:1 by gzip, like text
// and configuration files on a real disk.
func fillText(b []byte, rng *rand.Rand) {
	i := 0
	for i < len(b) {
		w := words[rng.IntN(len(words))]
		i += copy(b[i:], w)
		if i < len(b) {
			if rng.IntN(12) == 0 {
				b[i] = '\n'
			} else {
				b[i] = ' '
			}
			i++
		}
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}
