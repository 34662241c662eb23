package nfsroot

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
)

// A file handle is 16 bytes:
//
//	0      version (1)
//	1..3   zero
//	4..7   export id: FNV-1a 32 of the export's Path
//	8..15  object id: see table.go
//
// It names a path in the export's view, not a node: every request is resolved in the
// requesting client's own view, so a handle carried from one node to another can only
// reach the second node's files, never the first's.
const (
	handleLen     = 16
	handleVersion = 1
)

var (
	errBadHandle = errors.New("malformed file handle")
	errStale     = errors.New("stale file handle")
)

type handle struct {
	export uint32
	id     uint64
}

func exportID(path string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(path))
	return h.Sum32()
}

func (h handle) encode() []byte {
	var b [handleLen]byte
	b[0] = handleVersion
	binary.BigEndian.PutUint32(b[4:], h.export)
	binary.BigEndian.PutUint64(b[8:], h.id)
	return b[:]
}

// decodeHandle parses a handle; anything but the exact format is errBadHandle.
func decodeHandle(b []byte) (handle, error) {
	if len(b) != handleLen || b[0] != handleVersion || b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return handle{}, errBadHandle
	}
	return handle{export: binary.BigEndian.Uint32(b[4:]), id: binary.BigEndian.Uint64(b[8:])}, nil
}
