package indexfile

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
)

// Self-checksummed JSON (manifest.json, shards.json): the document's
// "checksum" field holds the CRC-32C of the document as written with that
// field set to zeroChecksum, so the file checks itself with no side file.

// signJSON marshals v (indented, newline-terminated) with its checksum
// field, which setSum sets, filled in; it returns the bytes.
func signJSON(v any, setSum func(string)) ([]byte, error) {
	setSum(zeroChecksum)
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	sum := CRCString(crc32.Checksum(data, castagnoli))
	setSum(sum)
	return bytes.Replace(data, []byte(`"checksum": "`+zeroChecksum+`"`), []byte(`"checksum": "`+sum+`"`), 1), nil
}

// verifyJSON reports whether data, whose checksum field reads stored,
// has that checksum, and the checksum it computed.
func verifyJSON(data []byte, stored string) (bool, string) {
	zeroed := bytes.Replace(data, []byte(`"checksum": "`+stored+`"`), []byte(`"checksum": "`+zeroChecksum+`"`), 1)
	got := CRCString(crc32.Checksum(zeroed, castagnoli))
	return len(stored) == 8 && got == stored, got
}
