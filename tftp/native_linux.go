package tftp

import "unsafe"

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }

func putNative16(b []byte, v uint16) { *(*uint16)(unsafe.Pointer(&b[0])) = v }
