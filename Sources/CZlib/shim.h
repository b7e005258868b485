/* CZlib: the one place Strands touches zlib's C header.
 *
 * zlib's init calls are macros that pass the library version and the size of
 * z_stream, which Swift cannot import; these wrappers make them functions.
 * Raw deflate streams only (negative window bits): permessage-deflate carries
 * neither a zlib header nor a checksum (RFC 7692 section 7.2.1).
 */
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H

#include <zlib.h>

static inline int czlib_deflate_init(z_streamp stream, int level, int window_bits, int mem_level) {
    return deflateInit2(stream, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY);
}

static inline int czlib_inflate_init(z_streamp stream, int window_bits) {
    return inflateInit2(stream, -window_bits);
}

#endif
