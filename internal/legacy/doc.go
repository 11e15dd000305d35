// Package legacy reads the Qubes OS backup formats that came before format
// 4: format 3 (R2 to R3.2: one OpenSSL stream per file,
// cut into 100 MiB chunks, each with an HMAC text file), format 2 (R2
// betas: a GNU multi-volume tar whose volumes are encrypted or gzipped one
// by one) and format 1 (a plain directory). It decrypts with Go's own AES
// and HMAC, never with an external program, and turns the core2 qubes.xml
// of those backups into the R4 schema that package host reads.
package legacy
