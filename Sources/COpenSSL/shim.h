/* COpenSSL: the one place Strands touches OpenSSL's C headers (OpenSSL 3).
 *
 * Several calls StrandsTLS needs are macros over SSL_CTX_ctrl, SSL_ctrl and BIO_ctrl, which Swift
 * cannot import; these wrappers make them functions.
 */
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>

static inline int copenssl_ctx_set_min_proto(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline int copenssl_ctx_set_max_proto(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

static inline int copenssl_set_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline void copenssl_bio_set_retry_read(BIO *bio) { BIO_set_retry_read(bio); }

static inline void copenssl_bio_clear_retry(BIO *bio) { BIO_clear_retry_flags(bio); }

static inline long copenssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }

static inline int copenssl_ctx_set_servername_callback(SSL_CTX *ctx, int (*callback)(SSL *, int *, void *), void *arg) {
    if (!SSL_CTX_set_tlsext_servername_callback(ctx, callback)) return 0;
    return (int)SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}

static inline int copenssl_ctx_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return (int)SSL_CTX_set_session_cache_mode(ctx, mode);
}

static inline uint64_t copenssl_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }

static inline long copenssl_ctx_set_options(SSL_CTX *ctx, uint64_t options) { return (long)SSL_CTX_set_options(ctx, options); }

/* ALPN: WebSocket runs over HTTP/1.1 (RFC 6455), so a server picks "http/1.1" when the client offers it
 * and otherwise goes on without ALPN; a client offers it. */
static inline int copenssl_alpn_select_http11(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                              const unsigned char *in, unsigned int inlen, void *arg) {
    static const unsigned char wire[] = "\x08http/1.1";
    unsigned char *selected = NULL;
    unsigned char length = 0;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&selected, &length, wire, sizeof(wire) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    *outlen = length;
    return SSL_TLSEXT_ERR_OK;
}

static inline void copenssl_ctx_select_http11(SSL_CTX *ctx) { SSL_CTX_set_alpn_select_cb(ctx, copenssl_alpn_select_http11, NULL); }

static inline int copenssl_ctx_offer_http11(SSL_CTX *ctx) {
    static const unsigned char wire[] = "\x08http/1.1";
    return SSL_CTX_set_alpn_protos(ctx, wire, sizeof(wire) - 1);
}

static const int copenssl_tlsext_err_ok = SSL_TLSEXT_ERR_OK;
static const int copenssl_tlsext_err_noack = SSL_TLSEXT_ERR_NOACK;
static const int copenssl_tlsext_err_alert_fatal = SSL_TLSEXT_ERR_ALERT_FATAL;

#endif
