// Package compress provides the compression filters named by a backup
// header's compression-filter field: built-in Go codecs where they exist,
// otherwise the named program run as a stdin-to-stdout filter, as the
// reference implementation does.
package compress
