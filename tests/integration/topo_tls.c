/* topo_harness: test certificates and a TLS redis-server (see
 * topo_harness.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* realpath() */

#include "topo_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- TLS ------------------------------------------------------------- */

static const char ossl_conf[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = roomcast-test\n"
    "[ca_ext]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[server_ext]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth,clientAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "[wrong_ext]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:wrong.example\n"
    "[client_ext]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = clientAuth\n";

struct certs {
    const char *dir;
    char conf[PATH_MAX];
    long serial;
};

static void cpath(const struct certs *t, const char *name, const char *ext,
                  char *out)
{
    snprintf(out, PATH_MAX, "%s/%s.%s", t->dir, name, ext);
}

static int ossl(const char *const argv[])
{
    char out[2048];
    int rc = th_run(argv, out, sizeof out, TH_RUN_MS);

    if (rc != 0)
        fprintf(stderr, "topo_harness: %s %s failed (%d): %s\n", argv[0],
                argv[1], rc, out);
    return rc == 0 ? 0 : -1;
}

static int gen_key(const struct certs *t, const char *name)
{
    char key[PATH_MAX];
    const char *argv[] = {th_openssl(), "genpkey",  "-algorithm",
                          "EC",         "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-out",       key,        NULL};

    cpath(t, name, "key", key);
    return ossl(argv);
}

static int make_ca(const struct certs *t, const char *name, const char *subj)
{
    char key[PATH_MAX], crt[PATH_MAX];
    const char *argv[] = {
        th_openssl(),  "req",    "-new",    "-x509", "-config", t->conf,
        "-extensions", "ca_ext", "-key",    key,     "-subj",   subj,
        "-days",       "2",      "-sha256", "-out",  crt,       NULL};

    cpath(t, name, "key", key);
    cpath(t, name, "crt", crt);
    return gen_key(t, name) || ossl(argv) ? -1 : 0;
}

/* name.key, and name.crt for subj signed by ca.crt with extensions ext. */
static int make_leaf(struct certs *t, const char *name, const char *subj,
                     const char *ext)
{
    char key[PATH_MAX], csr[PATH_MAX], crt[PATH_MAX], ca[PATH_MAX],
        cakey[PATH_MAX], serial[32];
    const char *req[] = {th_openssl(), "req",  "-new", "-config",
                         t->conf,      "-key", key,    "-subj",
                         subj,         "-out", csr,    NULL};
    const char *sign[] = {
        th_openssl(), "x509",  "-req",        "-in",  csr,     "-CA", ca,
        "-CAkey",     cakey,   "-set_serial", serial, "-days", "2",   "-sha256",
        "-extfile",   t->conf, "-extensions", ext,    "-out",  crt,   NULL};
    int rc;

    cpath(t, name, "key", key);
    cpath(t, name, "csr", csr);
    cpath(t, name, "crt", crt);
    cpath(t, "ca", "crt", ca);
    cpath(t, "ca", "key", cakey);
    snprintf(serial, sizeof serial, "%ld", t->serial++);
    rc = gen_key(t, name) || ossl(req) || ossl(sign) ? -1 : 0;
    unlink(csr);
    return rc;
}

int th_tls_certs(const char *dir)
{
    struct certs t;
    char err[TH_ERROR_SIZE];
    int rc;

    t.dir = dir;
    t.serial = ((long)time(NULL) & 0xffffff) << 8;
    snprintf(t.conf, sizeof t.conf, "%s/th-openssl.cnf", dir);
    if (th__write_file(t.conf, ossl_conf, 0600, err) != 0)
        return -1;
    rc = make_ca(&t, "ca", "/CN=roomcast test CA") ||
                 make_ca(&t, "other-ca", "/CN=roomcast unrelated CA") ||
                 make_leaf(&t, "server", "/CN=localhost", "server_ext") ||
                 make_leaf(&t, "wrong", "/CN=wrong.example", "wrong_ext") ||
                 make_leaf(&t, "client", "/CN=roomcast-test-client",
                           "client_ext")
             ? -1
             : 0;
    unlink(t.conf);
    if (rc != 0)
        fprintf(stderr, "topo_harness: th_tls_certs(%s) failed\n", dir);
    return rc;
}

int th_tls_start(rh_server *s, const char *certdir, int require_client_cert)
{
    char dir[PATH_MAX], cert[PATH_MAX + 16], key[PATH_MAX + 16],
        ca[PATH_MAX + 16], port[16];
    const char *args[] = {"--tls-port",
                          port,
                          "--tls-cert-file",
                          cert,
                          "--tls-key-file",
                          key,
                          "--tls-ca-cert-file",
                          ca,
                          "--tls-auth-clients",
                          require_client_cert ? "yes" : "no",
                          NULL};
    int attempt, tls;

    if (!realpath(certdir, dir)) {
        memset(s, 0, sizeof *s);
        snprintf(s->error, sizeof s->error, "th_tls_start: %s: %s", certdir,
                 strerror(errno));
        fprintf(stderr, "topo_harness: %s\n", s->error);
        return -1;
    }
    snprintf(cert, sizeof cert, "%s/server.crt", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    /* Another process may take the TLS port before redis binds it. */
    for (attempt = 0; attempt < 3; attempt++) {
        if ((tls = th__free_port()) < 0)
            break;
        snprintf(port, sizeof port, "%d", tls);
        if (th__launch(s, args, NULL, 0) == 0)
            return tls;
    }
    return -1;
}
