/*
 * Runs the envelope test vectors of tests/vectors (valid.vec and
 * malformed.vec, written by gen-vectors.mjs) through the codec.
 *
 * valid.vec: decode, compare every field, re-encode, format the SSE frame,
 * rc_message_check; then decode every proper prefix of envelopes up to
 * 4096 bytes with the prefix's last byte just before a PROT_NONE page.
 * malformed.vec: decode must fail with exactly the named reason.
 *
 * Every decode/encode/format call runs with its input, scratch and output
 * ending right at a PROT_NONE page (when they fit), and under a SIGSEGV/
 * SIGBUS handler on an alternate stack, so an over-read, an overrun or a
 * stack overflow is reported with the vector's name instead of killing the
 * whole test. Failures are collected and the test fails at the end naming
 * each failing vector.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "roomcast/roomcast.h"
#include "vecfile.h"

#ifndef RC_VECTOR_DIR
#error "RC_VECTOR_DIR (the tests/vectors directory) must be defined"
#endif

#define PREFIX_MAX 4096u         /* prefix test for envelopes this small */
#define GUARD_USABLE (64u << 10) /* bytes usable before each guard page */
#define MAX_REPORTS 300          /* stop printing after this many */

/* ---- failure reporting ------------------------------------------------ */

static int g_failures;    /* failing checks in the current file */
static int g_failed_vecs; /* vectors with at least one failing check */
static const char *g_last_failed;

static void fail_vec(const char *file, const char *vec, const char *fmt, ...)
{
    va_list ap;

    g_failures++;
    if (g_last_failed != vec) {
        g_failed_vecs++;
        g_last_failed = vec;
    }
    if (g_failures > MAX_REPORTS) {
        if (g_failures == MAX_REPORTS + 1)
            fprintf(stderr, "(further failures not printed)\n");
        return;
    }
    fprintf(stderr, "FAIL %s vector \"%s\": ", file, vec);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Print up to max bytes of p with C-style escapes. */
static void dump(const char *label, const char *p, size_t len, size_t from,
                 size_t max)
{
    size_t i, end = from + max < len ? from + max : len;

    if (g_failures > MAX_REPORTS)
        return;
    fprintf(stderr, "    %s (%zu bytes, from byte %zu): %s\"", label, len, from,
            from ? "..." : "");
    for (i = from; i < end; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\' || c == '"')
            fprintf(stderr, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fprintf(stderr, "\"%s\n", end < len ? "..." : "");
}

/* Compare bytes; on mismatch report where they first differ. */
static int same_bytes(const char *file, const char *vec, const char *what,
                      const char *exp, size_t elen, const char *got,
                      size_t glen)
{
    size_t i = 0, from;

    if (elen == glen && (elen == 0 || memcmp(exp, got, elen) == 0))
        return 1;
    while (i < elen && i < glen && exp[i] == got[i])
        i++;
    fail_vec(file, vec, "%s differs at byte %zu (expected %zu bytes, got %zu)",
             what, i, elen, glen);
    from = i > 40 ? i - 40 : 0;
    dump("expected", exp, elen, from, 120);
    dump("got     ", got, glen, from, 120);
    return 0;
}

/* ---- crash capture ---------------------------------------------------- */

static sigjmp_buf g_crash_jmp;
static volatile sig_atomic_t g_crash_armed;
static volatile sig_atomic_t g_crash_signal;
static struct sigaction g_old_segv, g_old_bus;
static stack_t g_old_stack;
static void *g_alt_stack;

static void crash_handler(int sig)
{
    if (g_crash_armed) {
        g_crash_armed = 0;
        g_crash_signal = sig;
        siglongjmp(g_crash_jmp, 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void crash_capture_start(void)
{
    struct sigaction sa;
    stack_t ss;
    size_t sz = 256u << 10;

    g_alt_stack = malloc(sz);
    assert_non_null(g_alt_stack);
    ss.ss_sp = g_alt_stack;
    ss.ss_size = sz;
    ss.ss_flags = 0;
    assert_int_equal(sigaltstack(&ss, &g_old_stack), 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK;
    assert_int_equal(sigaction(SIGSEGV, &sa, &g_old_segv), 0);
    assert_int_equal(sigaction(SIGBUS, &sa, &g_old_bus), 0);
}

static void crash_capture_stop(void)
{
    sigaction(SIGSEGV, &g_old_segv, NULL);
    sigaction(SIGBUS, &g_old_bus, NULL);
    sigaltstack(&g_old_stack, NULL);
    free(g_alt_stack);
    g_alt_stack = NULL;
}

enum call_op { OP_DECODE, OP_ENCODE, OP_SSE, OP_CHECK };

struct call {
    enum call_op op;
    const char *in;
    size_t in_len;
    const rc_limits *limits;
    rc_envelope *env;
    char *out;
    size_t out_size;
    size_t out_len;
    int rc;
};

/* Run one library call; returns 0, or the signal that crashed it. */
static int guarded(struct call *c)
{
    if (sigsetjmp(g_crash_jmp, 1) != 0)
        return (int)g_crash_signal;
    g_crash_armed = 1;
    switch (c->op) {
    case OP_DECODE:
        c->rc = rc_envelope_decode(c->in, c->in_len, c->limits, c->env, c->out,
                                   c->out_size);
        break;
    case OP_ENCODE:
        c->rc = rc_envelope_encode(c->env, c->limits, c->out, c->out_size,
                                   &c->out_len);
        break;
    case OP_SSE:
        c->rc = rc_sse_format(&c->env->msg, c->out, c->out_size, &c->out_len);
        break;
    case OP_CHECK:
        c->rc = rc_message_check(&c->env->msg, c->limits);
        break;
    }
    g_crash_armed = 0;
    return 0;
}

/* ---- guard pages -------------------------------------------------------- */

typedef struct guard {
    char *map;
    size_t map_len;
    char *end; /* first byte of the PROT_NONE page */
} guard;

static void guard_init(guard *g)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t page = ps > 0 ? (size_t)ps : 4096u;
    size_t pages = (GUARD_USABLE + page - 1) / page;
    void *m;

    g->map_len = (pages + 1) * page;
    m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    g->map = m;
    g->end = g->map + pages * page;
    assert_int_equal(mprotect(g->end, page, PROT_NONE), 0);
}

static void guard_free(guard *g)
{
    munmap(g->map, g->map_len);
    g->map = g->end = NULL;
}

/* n bytes ending at the guard page if they fit (else heap, *heap set). */
static char *guard_area(guard *g, size_t n, char **heap)
{
    *heap = NULL;
    if (n <= GUARD_USABLE)
        return g->end - n;
    *heap = malloc(n);
    assert_non_null(*heap);
    return *heap;
}

typedef struct guards {
    guard in, scratch, out;
} guards;

/* ---- error names -------------------------------------------------------- */

static const struct {
    const char *name;
    int code;
} k_errors[] = {
#define RC_VEC_ERR_ENTRY_(name, value, text) {#name, value},
    RC_ERRNO_MAP(RC_VEC_ERR_ENTRY_)
#undef RC_VEC_ERR_ENTRY_
};

static int error_code(const char *name, size_t len, int *code)
{
    size_t i;

    for (i = 0; i < sizeof k_errors / sizeof k_errors[0]; i++) {
        if (strlen(k_errors[i].name) == len &&
            memcmp(k_errors[i].name, name, len) == 0) {
            *code = k_errors[i].code;
            return 0;
        }
    }
    return -1;
}

/* ---- helpers ------------------------------------------------------------ */

static const char k_dirty[] = "DIRTY-not-written-by-decode";

/* Fill *env with values decode must overwrite. */
static void make_dirty(rc_envelope *env)
{
    env->msg.event = k_dirty;
    env->msg.id = k_dirty;
    env->msg.data = k_dirty;
    env->msg.data_len = sizeof k_dirty - 1;
    env->msg.retry = 777;
    env->node = k_dirty;
    env->except = k_dirty;
    env->meta = k_dirty;
    env->meta_len = sizeof k_dirty - 1;
}

static int keys_allowed(const char *file, const vec_record *r,
                        const char *const *allowed)
{
    size_t i, j;
    int ok = 1;

    for (i = 0; i < r->nfields; i++) {
        for (j = 0; allowed[j]; j++) {
            if (strcmp(r->fields[i].key, allowed[j]) == 0)
                break;
        }
        if (!allowed[j]) {
            fail_vec(file, r->name, "bad vector file: unknown field \"%s\"",
                     r->fields[i].key);
            ok = 0;
        }
    }
    return ok;
}

static const vec_field *need(const char *file, const vec_record *r,
                             const char *key)
{
    const vec_field *f = vec_get(r, key);

    if (!f)
        fail_vec(file, r->name, "bad vector file: no \"%s\" field", key);
    return f;
}

static void check_string(const char *file, const char *vec, const char *what,
                         const vec_field *exp, const char *got)
{
    if (!exp) {
        if (got)
            fail_vec(file, vec, "%s should be NULL (absent), is not", what);
        return;
    }
    if (!got) {
        fail_vec(file, vec, "%s is NULL, expected %zu bytes", what, exp->len);
        return;
    }
    same_bytes(file, vec, what, exp->value, exp->len, got, strlen(got));
}

static int inside(const char *p, size_t n, const char *base, size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return p && a >= b && a - b <= len && n <= len - (size_t)(a - b);
}

static const char *sig_name(int sig)
{
    return sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : "signal";
}

/* Check one output-producing call (encode or SSE) against exp. */
static void check_output(const char *file, const char *vec, const char *what,
                         guards *g, enum call_op op, rc_envelope *env,
                         const vec_field *exp)
{
    struct call c;
    char *heap, *buf;
    int sig;

    /* Size query: size 0, buf NULL. */
    memset(&c, 0, sizeof c);
    c.op = op;
    c.env = env;
    c.out_len = (size_t)-1;
    sig = guarded(&c);
    if (sig) {
        fail_vec(file, vec, "%s size query crashed (%s)", what, sig_name(sig));
        return;
    }
    if (c.rc != RC_ENOBUFS || c.out_len != exp->len)
        fail_vec(file, vec,
                 "%s with size 0: got %s and length %zu, expected ENOBUFS "
                 "and %zu",
                 what, rc_err_name(c.rc), c.out_len, exp->len);

    /* One byte short. */
    if (exp->len > 0) {
        buf = guard_area(&g->out, exp->len - 1, &heap);
        c.out = buf;
        c.out_size = exp->len - 1;
        c.out_len = (size_t)-1;
        sig = guarded(&c);
        free(heap);
        if (sig) {
            fail_vec(file, vec, "%s into %zu bytes crashed (%s)", what,
                     exp->len - 1, sig_name(sig));
            return;
        }
        if (c.rc != RC_ENOBUFS || c.out_len != exp->len)
            fail_vec(file, vec,
                     "%s into %zu bytes: got %s and length %zu, expected "
                     "ENOBUFS and %zu",
                     what, exp->len - 1, rc_err_name(c.rc), c.out_len,
                     exp->len);
    }

    /* Exact size, ending at the guard page. */
    buf = guard_area(&g->out, exp->len, &heap);
    c.out = buf;
    c.out_size = exp->len;
    c.out_len = (size_t)-1;
    sig = guarded(&c);
    if (sig) {
        fail_vec(file, vec, "%s crashed (%s)", what, sig_name(sig));
    } else if (c.rc != 0) {
        fail_vec(file, vec, "%s returned %s (%d), expected success", what,
                 rc_err_name(c.rc), c.rc);
    } else if (c.out_len > exp->len) {
        fail_vec(file, vec, "%s reports %zu bytes written into %zu", what,
                 c.out_len, exp->len);
    } else {
        same_bytes(file, vec, what, exp->value, exp->len, buf, c.out_len);
    }
    free(heap);
}

static int only_whitespace(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return 0;
    }
    return 1;
}

/* Decode every proper prefix, its last byte just before the guard page. */
static size_t prefix_test(const char *file, const char *vec, guards *g,
                          const vec_field *envf)
{
    size_t k, bad = 0;
    rc_envelope env;
    struct call c;

    for (k = 0; k < envf->len; k++) {
        int ws = only_whitespace(envf->value + k, envf->len - k);
        int sig;

        memcpy(g->in.end - k, envf->value, k);
        memset(&c, 0, sizeof c);
        c.op = OP_DECODE;
        c.in = g->in.end - k;
        c.in_len = k;
        c.env = &env;
        c.out = g->scratch.end - k;
        c.out_size = k;
        sig = guarded(&c);
        if (sig == 0 && ws && c.rc == 0)
            continue;
        if (sig == 0 && !ws && (c.rc == RC_EJSON || c.rc == RC_EUTF8))
            continue;
        if (++bad > 3)
            continue;
        if (sig)
            fail_vec(file, vec, "prefix of %zu bytes crashed (%s)", k,
                     sig_name(sig));
        else if (ws)
            fail_vec(file, vec,
                     "prefix of %zu bytes (rest is whitespace) gave %s (%d), "
                     "expected success",
                     k, rc_err_name(c.rc), c.rc);
        else
            fail_vec(file, vec,
                     "prefix of %zu bytes gave %s (%d), expected EJSON (or "
                     "EUTF8 when cut inside a character)",
                     k, rc_err_name(c.rc), c.rc);
    }
    if (bad > 3)
        fail_vec(file, vec, "... %zu failing prefixes in all", bad);
    return envf->len;
}

/* ---- valid.vec ---------------------------------------------------------- */

static const char *const k_valid_keys[] = {
    "name", "envelope", "data", "event", "id",       "retry",
    "node", "except",   "meta", "sse",   "reencode", NULL};

static size_t run_valid(const char *file, const vec_record *r, guards *g)
{
    const char *vec = r->name;
    const vec_field *envf, *dataf, *nodef, *ssef, *retryf, *metaf, *encf;
    unsigned long long retry = 0;
    rc_envelope env;
    struct call c;
    char *in_heap, *scratch_heap, *in, *scratch;
    int sig;
    size_t prefixes = 0;

    if (!keys_allowed(file, r, k_valid_keys))
        return 0;
    envf = need(file, r, "envelope");
    dataf = need(file, r, "data");
    nodef = need(file, r, "node");
    ssef = need(file, r, "sse");
    if (!envf || !dataf || !nodef || !ssef)
        return 0;
    retryf = vec_get(r, "retry");
    if (retryf &&
        vec_get_ull(retryf, (unsigned long long)RC_RETRY_MAX, &retry) != 0) {
        fail_vec(file, vec, "bad vector file: retry is not a decimal <= %lld",
                 RC_RETRY_MAX);
        return 0;
    }
    metaf = vec_get(r, "meta");
    encf = vec_get(r, "reencode");
    if (!encf)
        encf = envf;

    in = guard_area(&g->in, envf->len, &in_heap);
    memcpy(in, envf->value, envf->len);
    scratch = guard_area(&g->scratch, envf->len, &scratch_heap);
    make_dirty(&env);
    memset(&c, 0, sizeof c);
    c.op = OP_DECODE;
    c.in = in;
    c.in_len = envf->len;
    c.env = &env;
    c.out = scratch;
    c.out_size = envf->len;
    sig = guarded(&c);
    if (sig) {
        fail_vec(file, vec, "decode crashed (%s)", sig_name(sig));
        goto out;
    }
    if (c.rc != 0) {
        fail_vec(file, vec, "decode returned %s (%d: %s), expected success",
                 rc_err_name(c.rc), c.rc, rc_strerror(c.rc));
        goto out;
    }

    /* Fields. */
    if (!inside(env.msg.data, env.msg.data_len, in, envf->len))
        fail_vec(file, vec, "data does not point into the input buffer");
    else
        same_bytes(file, vec, "data", dataf->value, dataf->len, env.msg.data,
                   env.msg.data_len);
    check_string(file, vec, "event", vec_get(r, "event"), env.msg.event);
    check_string(file, vec, "id", vec_get(r, "id"), env.msg.id);
    check_string(file, vec, "node", nodef, env.node);
    check_string(file, vec, "except", vec_get(r, "except"), env.except);
    if (retryf && env.msg.retry != (long long)retry)
        fail_vec(file, vec, "retry is %lld, expected %llu", env.msg.retry,
                 retry);
    if (!retryf && env.msg.retry != -1)
        fail_vec(file, vec, "retry is %lld, expected -1 (absent)",
                 env.msg.retry);
    if (!metaf) {
        if (env.meta)
            fail_vec(file, vec, "meta should be NULL (absent), is not");
    } else if (!inside(env.meta, env.meta_len, in, envf->len)) {
        fail_vec(file, vec, "meta does not point into the input buffer");
    } else {
        same_bytes(file, vec, "meta", metaf->value, metaf->len, env.meta,
                   env.meta_len);
    }
    if (g_last_failed == vec)
        goto out; /* the rest would only repeat the field mismatch */

    /* Re-encode, SSE frame, message check. */
    check_output(file, vec,
                 encf == envf ? "re-encode (= envelope)" : "re-encode", g,
                 OP_ENCODE, &env, encf);
    check_output(file, vec, "sse frame", g, OP_SSE, &env, ssef);
    memset(&c, 0, sizeof c);
    c.op = OP_CHECK;
    c.env = &env;
    sig = guarded(&c);
    if (sig)
        fail_vec(file, vec, "rc_message_check crashed (%s)", sig_name(sig));
    else if (c.rc != 0)
        fail_vec(file, vec, "rc_message_check returned %s (%d), expected 0",
                 rc_err_name(c.rc), c.rc);

    /* Every proper prefix (this reuses the guard areas, so it goes last). */
    if (envf->len <= PREFIX_MAX)
        prefixes = prefix_test(file, vec, g, envf);

out:
    free(in_heap);
    free(scratch_heap);
    return prefixes;
}

/* ---- malformed.vec ------------------------------------------------------ */

static const char *const k_malformed_keys[] = {"name",     "envelope",  "error",
                                               "max_data", "max_depth", NULL};

static void run_malformed(const char *file, const vec_record *r, guards *g)
{
    const char *vec = r->name;
    const vec_field *envf, *errf, *f;
    unsigned long long v;
    rc_limits limits = {0, 0};
    const rc_limits *lp = NULL;
    rc_envelope env;
    struct call c;
    char *in_heap, *scratch_heap, *in;
    int want, sig;

    if (!keys_allowed(file, r, k_malformed_keys))
        return;
    envf = need(file, r, "envelope");
    errf = need(file, r, "error");
    if (!envf || !errf)
        return;
    if (error_code(errf->value, errf->len, &want) != 0) {
        fail_vec(file, vec, "bad vector file: unknown error name \"%.40s\"",
                 errf->value);
        return;
    }
    if ((f = vec_get(r, "max_data")) != NULL) {
        if (vec_get_ull(f, (unsigned long long)SIZE_MAX / 2, &v) != 0 ||
            v == 0) {
            fail_vec(file, vec, "bad vector file: bad max_data");
            return;
        }
        limits.max_data = (size_t)v;
        lp = &limits;
    }
    if ((f = vec_get(r, "max_depth")) != NULL) {
        if (vec_get_ull(f, UINT_MAX, &v) != 0 || v == 0) {
            fail_vec(file, vec, "bad vector file: bad max_depth");
            return;
        }
        limits.max_depth = (unsigned)v;
        lp = &limits;
    }

    memset(&c, 0, sizeof c);
    c.op = OP_DECODE;
    in = guard_area(&g->in, envf->len, &in_heap);
    memcpy(in, envf->value, envf->len);
    c.in = in;
    c.in_len = envf->len;
    c.limits = lp;
    c.env = &env;
    c.out = guard_area(&g->scratch, envf->len, &scratch_heap);
    c.out_size = envf->len;
    sig = guarded(&c);
    if (sig) {
        fail_vec(file, vec, "decode crashed (%s), expected %s", sig_name(sig),
                 errf->value);
    } else if (c.rc != want) {
        fail_vec(file, vec, "decode returned %s (%d), expected %s (%d)",
                 c.rc == 0 ? "success" : rc_err_name(c.rc), c.rc, errf->value,
                 want);
        if (envf->len <= 200)
            dump("envelope", envf->value, envf->len, 0, 200);
    }
    free(in_heap);
    free(scratch_heap);
}

/* ---- tests -------------------------------------------------------------- */

static void load_or_fail(vec_file *vf, const char *name)
{
    char path[4096];

    snprintf(path, sizeof path, "%s/%s", RC_VECTOR_DIR, name);
    if (vec_load(vf, path) != 0)
        fail_msg("cannot use %s: %s", name, vf->error);
    if (vf->nrecords == 0) {
        vec_free(vf);
        fail_msg("%s holds no vectors", path);
    }
}

static void reset_counts(void)
{
    g_failures = 0;
    g_failed_vecs = 0;
    g_last_failed = NULL;
}

static void test_valid_vectors(void **state)
{
    vec_file vf;
    guards g;
    size_t i, prefixes = 0;

    (void)state;
    reset_counts();
    load_or_fail(&vf, "valid.vec");
    guard_init(&g.in);
    guard_init(&g.scratch);
    guard_init(&g.out);
    crash_capture_start();
    for (i = 0; i < vf.nrecords; i++)
        prefixes += run_valid("valid.vec", &vf.records[i], &g);
    crash_capture_stop();
    guard_free(&g.in);
    guard_free(&g.scratch);
    guard_free(&g.out);
    fprintf(stderr, "valid.vec: %zu vectors, %zu prefixes decoded, %d failed\n",
            vf.nrecords, prefixes, g_failed_vecs);
    vec_free(&vf);
    if (g_failures)
        fail_msg("%d of the valid vectors failed (%d checks; see above)",
                 g_failed_vecs, g_failures);
}

static void test_malformed_vectors(void **state)
{
    vec_file vf;
    guards g;
    size_t i;

    (void)state;
    reset_counts();
    load_or_fail(&vf, "malformed.vec");
    guard_init(&g.in);
    guard_init(&g.scratch);
    crash_capture_start();
    for (i = 0; i < vf.nrecords; i++)
        run_malformed("malformed.vec", &vf.records[i], &g);
    crash_capture_stop();
    guard_free(&g.in);
    guard_free(&g.scratch);
    fprintf(stderr, "malformed.vec: %zu vectors, %d failed\n", vf.nrecords,
            g_failed_vecs);
    vec_free(&vf);
    if (g_failures)
        fail_msg("%d of the malformed vectors failed (see above)",
                 g_failed_vecs);
}

/* The error names the vectors use must be the library's. */
static void test_error_names(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof k_errors / sizeof k_errors[0]; i++) {
        if (strcmp(rc_err_name(k_errors[i].code), k_errors[i].name) != 0)
            fail_msg("rc_err_name(%d) is \"%s\", expected \"%s\"",
                     k_errors[i].code, rc_err_name(k_errors[i].code),
                     k_errors[i].name);
    }
}

/* The reader must reject a broken .vec file with a message, not crash. */
static void test_reader_rejects_bad_files(void **state)
{
    static const struct {
        const char *text;
        size_t len;
        const char *why;
    } bad[] = {
#define BAD_(s, why) {s, sizeof s - 1, why}
        BAD_("name 1\na\nend 0\n\nenvelope 1\nx\n", "field outside a record"),
        BAD_("envelope 1\nx\n", "first field is not name"),
        BAD_("name 1\na\nenvelope 5\nxy\n", "length past the end"),
        BAD_("name 1\na\nenvelope 1\nxy\nend 0\n\n", "length too short"),
        BAD_("name 1\na\nenvelope 1\nx\n", "no end"),
        BAD_("name 1\na\nname 1\nb\nend 0\n\n", "name inside a record"),
        BAD_("name 1\na\nend 1\nx\n", "end with a length"),
        BAD_("name 1\na\ndata 1\nx\ndata 1\ny\nend 0\n\n", "duplicate field"),
        BAD_("name 1\na\nDATA 1\nx\nend 0\n\n", "uppercase key"),
        BAD_("name 1\na\ndata\nx\nend 0\n\n", "no length"),
        BAD_("name 1\na\ndata -1\nx\nend 0\n\n", "negative length"),
        BAD_("name 1\na\ndata 1x\nx\nend 0\n\n", "junk after length"),
        BAD_("name 1\na\ndata 99999999999999999999999999\nx\nend 0\n\n",
             "length overflow"),
        BAD_("name 0\n\nend 0\n\n", "empty name"),
        BAD_("name 3\na\0b\nend 0\n\n", "NUL in name"),
        BAD_("name 1\na\nend 0", "end without its newline"),
        BAD_(" name 1\na\nend 0\n\n", "leading space"),
#undef BAD_
    };
    static const char good[] = "# comment\n\nname 3\nabc\n# between "
                               "fields\ndata 4\na\0\nb\nend 0\n\n\nname 1\nz\n"
                               "end 0\n\n";
    char path[] = "/tmp/rc-vecfile-XXXXXX";
    vec_file vf;
    size_t i;
    int fd;
    FILE *fp;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(bad[i].text, 1, bad[i].len, fp), bad[i].len);
        fclose(fp);
        if (vec_load(&vf, path) == 0) {
            vec_free(&vf);
            unlink(path);
            fail_msg("reader accepted a bad file (%s)", bad[i].why);
        }
        if (vf.error[0] == '\0') {
            unlink(path);
            fail_msg("reader gave no message for a bad file (%s)", bad[i].why);
        }
        vec_free(&vf);
    }
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(good, 1, sizeof good - 1, fp), sizeof good - 1);
    fclose(fp);
    if (vec_load(&vf, path) != 0) {
        unlink(path);
        fail_msg("reader rejected a good file: %s", vf.error);
    }
    unlink(path);
    assert_int_equal(vf.nrecords, 2);
    assert_string_equal(vf.records[0].name, "abc");
    assert_int_equal(vf.records[0].nfields, 2);
    assert_non_null(vec_get(&vf.records[0], "data"));
    assert_int_equal(vec_get(&vf.records[0], "data")->len, 4);
    assert_memory_equal(vec_get(&vf.records[0], "data")->value, "a\0\nb", 4);
    assert_string_equal(vf.records[1].name, "z");
    vec_free(&vf);
    vec_free(&vf); /* harmless twice */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_rejects_bad_files),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_valid_vectors),
        cmocka_unit_test(test_malformed_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
