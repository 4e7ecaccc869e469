/*
 * Lua scripts on the pub context: their text, loading, calls, and the
 * retry after NOSCRIPT. A call keeps its arguments until its reply, so
 * that it can be sent again as EVAL (which loads the script as it runs
 * it) when Redis says it lost the script: the failed calls are answered,
 * and so sent again, in the order they were made, and no call after them
 * can have run its script in between (it would have failed the same way).
 * The scripts' text is in lua.c.
 */
#include <stdint.h>

#include "port.h"

/* A call in flight: argv[0..2] are EVAL(SHA), the script or its SHA1 and
 * the number of keys; the rest are copies of the caller's. */
typedef struct call {
    rc__watch *w;
    int script;
    rc__script_cb cb;
    void *arg;
    int argc;
    const char **argv;
    size_t *argvlen;
    char numkeys[24];
} call;

/* ---- replies ---------------------------------------------------------- */

struct rc__reply {
    redisReply r;
};

size_t rc__reply_len(const rc__reply *r)
{
    return r->r.type == REDIS_REPLY_ARRAY ? r->r.elements : 0;
}

int rc__reply_int(const rc__reply *r, size_t i, long long *out)
{
    const redisReply *e;

    if (i >= rc__reply_len(r))
        return RC_ETYPE;
    e = r->r.element[i];
    if (e->type != REDIS_REPLY_INTEGER)
        return RC_ETYPE;
    *out = e->integer;
    return 0;
}

const char *rc__reply_str(const rc__reply *r, size_t i, size_t *len)
{
    const redisReply *e;

    if (i >= rc__reply_len(r))
        return NULL;
    e = r->r.element[i];
    if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS)
        return NULL;
    *len = e->len;
    return e->str;
}

size_t rc__reply_strings_len(const rc__reply *r)
{
    size_t i, n = rc__reply_len(r), sum = 0;

    for (i = 0; i < n; i++)
        if (r->r.element[i]->type == REDIS_REPLY_STRING)
            sum += r->r.element[i]->len + 1;
    return sum;
}

/* ---- sending ---------------------------------------------------------- */

int rc__watch_sendv(rc__watch *w, redisCallbackFn *hfn, rc_transport_done tfn,
                    void *priv, int slot, int argc, const char **argv,
                    const size_t *argvlen)
{
    size_t need = 32, i;
    char *cmd, *d;
    int rv;

    if (w != NULL && w->ac != NULL) {
        if (redisAsyncCommandArgv(w->ac, hfn, priv, argc, argv, argvlen) !=
            REDIS_OK)
            return RC_EMISUSE;
        w->held++;
        return 0;
    }
    for (i = 0; i < (size_t)argc; i++)
        need += argvlen[i] + 32;
    if (w == NULL || (cmd = rc__malloc(&w->mem, need)) == NULL)
        return w == NULL ? RC_EMISUSE : RC_ENOMEM;
    d = rc__resp_head(cmd, '*', (size_t)argc);
    for (i = 0; i < (size_t)argc; i++) {
        d = rc__resp_head(d, '$', argvlen[i]);
        memcpy(d, argv[i], argvlen[i]);
        d += argvlen[i];
        *d++ = '\r';
        *d++ = '\n';
    }
    rv = rc__watch_send(w, hfn, tfn, priv, slot, cmd, (size_t)(d - cmd));
    rc__free(&w->mem, cmd);
    return rv;
}

/* ---- loading ---------------------------------------------------------- */

/* SCRIPT LOAD replies come in the order the loads were sent: the watch
 * counts them to know whose SHA1 each one is. */
static void on_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    rc__watch *w = privdata;
    redisReply *reply = r;
    unsigned i = w->loaded++;

    (void)ac;
    if (w->a != NULL && reply != NULL && reply->type == REDIS_REPLY_STRING &&
        reply->len == 40 && i < RC__SCRIPTS)
        memcpy(w->a->port.sha[i], reply->str, 41);
    rc__watch_release(w);
}

static void t_on_loaded(void *priv, const redisReply *reply)
{
    on_loaded(NULL, (void *)(uintptr_t)reply, priv);
}

void rc__port_load_scripts(rc_adapter *a)
{
    rc__watch *w = a->port.pub;
    const char *argv[3] = {"SCRIPT", "LOAD", NULL};
    size_t argvlen[3] = {6, 4, 0}, i;

    /* A SHA1 once known stays right (it is the text's); loading again on
     * each context refills Redis' cache after a restart. On a cluster
     * this loads the node that takes it; the others learn a script from
     * its first EVAL after NOSCRIPT. */
    for (i = 0; i < RC__SCRIPTS && rc__watch_live(w); i++) {
        argv[2] = rc__lua[i];
        argvlen[2] = strlen(rc__lua[i]);
        if (rc__watch_sendv(w, on_loaded, t_on_loaded, w, -1, 3, argv,
                            argvlen) != 0)
            break;
    }
}

/* ---- calls ------------------------------------------------------------ */

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

static void t_on_reply(void *priv, const redisReply *reply)
{
    on_reply(NULL, (void *)(uintptr_t)reply, priv);
}

static int send_call(call *c, int eval)
{
    rc__port *port = &c->w->a->port;
    int keys = c->argc > 3 && !(c->argvlen[2] == 1 && c->argv[2][0] == '0');
    int slot = keys ? (int)rc__keyslot(c->argv[3], c->argvlen[3]) : -1;

    c->argv[0] = eval ? "EVAL" : "EVALSHA";
    c->argvlen[0] = strlen(c->argv[0]);
    c->argv[1] = eval ? rc__lua[c->script] : port->sha[c->script];
    c->argvlen[1] = strlen(c->argv[1]);
    return rc__watch_sendv(c->w, on_reply, t_on_reply, c, slot, c->argc,
                           c->argv, c->argvlen);
}

static void finish(call *c, const redisReply *reply, int err)
{
    rc__watch *w = c->w;
    rc_adapter *a = w->a;
    rc__alloc mem = w->mem;

    w->busy++;
    if (a != NULL && err != 0)
        a->c.script_errors++;
    if (a != NULL && c->cb != NULL)
        c->cb(a, err ? NULL : (const rc__reply *)(const void *)reply, err,
              c->arg);
    w->busy--;
    rc__free(&mem, c);
    rc__watch_release(w);
}

static int is_noscript(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR &&
           strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    call *c = privdata;
    redisReply *reply = r;

    (void)ac;
    if (reply != NULL && is_noscript(reply) && c->w->a != NULL &&
        c->w->a->port.pub == c->w && send_call(c, 1) == 0) {
        rc__watch_release(c->w); /* the resent call holds it again */
        return;
    }
    finish(c, reply,
           reply == NULL                      ? RC_EMISUSE
           : reply->type == REDIS_REPLY_ERROR ? RC_EREDIS
                                              : 0);
}

int rc__port_script(rc_adapter *a, int script, size_t nkeys, size_t n,
                    const char *const *argv, const size_t *argvlen,
                    rc__script_cb cb, void *arg)
{
    size_t i, bytes = 0, at;
    call *c;
    char *d;
    int rv;

    if (!rc__port_has_pub(a))
        return RC_EMISUSE;
    for (i = 0; i < n; i++)
        bytes += argvlen[i];
    c = rc__malloc(&a->mem, sizeof *c +
                                (n + 3) * (sizeof(char *) + sizeof(size_t)) +
                                bytes);
    if (c == NULL)
        return RC_ENOMEM;
    memset(c, 0, sizeof *c);
    c->w = a->port.pub;
    c->script = script;
    c->cb = cb;
    c->arg = arg;
    c->argc = (int)n + 3;
    c->argv = (const char **)(void *)(c + 1);
    c->argvlen = (size_t *)(void *)(c->argv + n + 3);
    d = (char *)(c->argvlen + n + 3);
    c->argvlen[2] = (size_t)(rc__dec_put(c->numkeys, nkeys) - c->numkeys);
    c->argv[2] = c->numkeys;
    for (i = 0, at = 0; i < n; at += argvlen[i], i++) {
        memcpy(d + at, argv[i], argvlen[i]);
        c->argv[i + 3] = d + at;
        c->argvlen[i + 3] = argvlen[i];
    }
    if ((rv = send_call(c, a->port.sha[script][0] == '\0')) != 0)
        rc__free(&a->mem, c);
    return rv;
}
