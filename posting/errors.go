package posting

import "errors"

// ErrCorrupt is wrapped by every error that reports a postings file, an
// extent or a directory whose bytes are inconsistent: bad magic, checksum
// mismatch, truncation, impossible sizes, undecodable payload. Callers test
// for it with errors.Is.
var ErrCorrupt = errors.New("posting: corrupt data")

// ErrVersion is wrapped by the error for a postings file whose header is
// intact (its CRC32C matches) but of a format version newer than this
// package reads: written by a newer program, not damaged.
var ErrVersion = errors.New("posting: unsupported format version")
