/*
 * TLS client contexts for the glue's wires (OpenSSL, through libevent's
 * bufferevent_openssl). Peers are always verified: against the CAs the
 * URL names (cacert, capath) or the system's store, and by name (or IP
 * address) per connection (wire.c). A client certificate is sent when the
 * URL names one.
 */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "wire.h"

static void tls_err(char *err, size_t errlen, const char *what,
                    const char *file)
{
    char s[200];
    unsigned long e = ERR_get_error();

    if (e != 0)
        ERR_error_string_n(e, s, sizeof s);
    else
        snprintf(s, sizeof s, "failed");
    ERR_clear_error();
    snprintf(err, errlen, "TLS: %s %s: %s", what, file ? file : "", s);
}

SSL_CTX *rc__tls_ctx(const char *cacert, const char *capath, const char *cert,
                     const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        tls_err(err, errlen, "context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cacert != NULL || capath != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, cacert, capath) != 1) {
            tls_err(err, errlen, "cannot load CA",
                    cacert != NULL ? cacert : capath);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tls_err(err, errlen, "cannot load the system's CAs", NULL);
        goto fail;
    }
    if (cert != NULL && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_err(err, errlen, "cannot load certificate", cert);
        goto fail;
    }
    if (key != NULL &&
        (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        tls_err(err, errlen, "cannot load key", key);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void rc__tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}
