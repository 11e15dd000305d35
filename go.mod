module pedos.dev/backup

go 1.26.0

require (
	github.com/klauspost/compress v1.20.4
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/crypto v0.59.0
	golang.org/x/sync v0.25.0
)
