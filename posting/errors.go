package posting

import "errors"

// ErrCorrupt is wrapped by every error that reports a postings file, an
// extent or a directory whose bytes are inconsistent: bad magic, checksum
// mismatch, truncation, impossible sizes, undecodable payload. Callers test
// for it with errors.Is.
var ErrCorrupt = errors.New("posting: corrupt data")
