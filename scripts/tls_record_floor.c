/* What OpenSSL itself costs per small message, with no sockets, no event loop and no WebSocket: PAIRS
 * client/server SSL pairs on memory BIOs, each round trip one SSL_write and SSL_read on each side (one
 * record each way), the pairs taken in turn as an echo server meets its connections. The time per
 * round trip, halved, is what one side pays per message: the least a TLS echo can add over plain TCP.
 *
 *   cc -O2 -o tls-record-floor scripts/tls_record_floor.c -lssl -lcrypto
 *   tls-record-floor CERT KEY [PAIRS=100] [BYTES=128] [ROUND_TRIPS=300000] [TLS1.3 SUITE]
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    SSL *client, *server;
    BIO *client_in, *client_out, *server_in, *server_out;
} pair_t;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Moves what `from` wrote into `to`'s input. */
static void carry(BIO *from, BIO *to) {
    char buffer[65536];
    int n;
    while ((n = BIO_read(from, buffer, sizeof buffer)) > 0) BIO_write(to, buffer, n);
}

static void fail(const char *what) {
    fprintf(stderr, "tls-record-floor: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tls-record-floor CERT KEY [PAIRS] [BYTES] [ROUND_TRIPS] [SUITE]\n");
        return 2;
    }
    int pairs = argc > 3 ? atoi(argv[3]) : 100, bytes = argc > 4 ? atoi(argv[4]) : 128;
    long trips = argc > 5 ? atol(argv[5]) : 300000;
    const char *suite = argc > 6 ? argv[6] : NULL;
    if (pairs < 1 || bytes < 1 || bytes > 16384 || trips < 1) fail("PAIRS, BYTES (1...16384) and ROUND_TRIPS must be positive");

    SSL_CTX *server_context = SSL_CTX_new(TLS_server_method()), *client_context = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_use_certificate_chain_file(server_context, argv[1]) != 1) fail("certificate");
    if (SSL_CTX_use_PrivateKey_file(server_context, argv[2], SSL_FILETYPE_PEM) != 1) fail("key");
    if (suite && SSL_CTX_set_ciphersuites(client_context, suite) != 1) fail("suite");

    pair_t *all = calloc((size_t)pairs, sizeof *all);
    char *message = malloc((size_t)bytes), *got = malloc(65536);
    memset(message, 'x', (size_t)bytes);
    for (int i = 0; i < pairs; i++) {
        pair_t *p = &all[i];
        p->client = SSL_new(client_context);
        p->server = SSL_new(server_context);
        p->client_in = BIO_new(BIO_s_mem());
        p->client_out = BIO_new(BIO_s_mem());
        p->server_in = BIO_new(BIO_s_mem());
        p->server_out = BIO_new(BIO_s_mem());
        SSL_set_bio(p->client, p->client_in, p->client_out);
        SSL_set_bio(p->server, p->server_in, p->server_out);
        SSL_set_connect_state(p->client);
        SSL_set_accept_state(p->server);
        int done = 0;
        for (int step = 0; step < 10 && !done; step++) {
            int c = SSL_do_handshake(p->client);
            carry(p->client_out, p->server_in);
            int s = SSL_do_handshake(p->server);
            carry(p->server_out, p->client_in);
            done = c == 1 && s == 1;
        }
        if (!done) fail("handshake");
        SSL_read(p->client, got, 65536); /* Takes the session tickets in. */
        ERR_clear_error();
    }
    printf("%s, %d pairs, %d-byte messages\n", SSL_CIPHER_get_name(SSL_get_current_cipher(all[0].client)), pairs, bytes);

    double start = now();
    for (long i = 0; i < trips; i++) {
        pair_t *p = &all[i % pairs];
        if (SSL_write(p->client, message, bytes) != bytes) fail("client write");
        carry(p->client_out, p->server_in);
        int n = SSL_read(p->server, got, 65536);
        if (n != bytes) fail("server read");
        if (SSL_write(p->server, got, n) != n) fail("server write");
        carry(p->server_out, p->client_in);
        if (SSL_read(p->client, got, 65536) != bytes) fail("client read");
    }
    double seconds = now() - start;
    printf("%.3f us per round trip; per message, each side: %.3f us (one record in, one out)\n",
           seconds / (double)trips * 1e6, seconds / (double)trips * 1e6 / 2);
    return 0;
}
