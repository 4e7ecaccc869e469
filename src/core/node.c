/*
 * The node's lease: the adapter holds its node id in Redis while it lives
 * (see roomcast.h), so that two processes given one id are told apart
 * rather than drop each other's messages as echoes. Claimed on every new
 * pub context, renewed every third of the lease from rc_adapter_tick, let
 * go of when the pub context is handed back or the adapter freed.
 */
#include <stdint.h>

#include "internal.h"

#define DEFAULT_KEY_PREFIX "rc:"
#define DEFAULT_LEASE_MS 15000u
#define MIN_LEASE_MS 1000u
#define MAX_LEASE_MS 3600000u

/* kp + suffix, allocated; NULL if out of memory. */
static char *key(rc_adapter *a, const char *kp, size_t len, const char *sfx)
{
    size_t n = strlen(sfx);
    char *k = rc__malloc(&a->mem, len + n + 1);

    if (k != NULL) {
        memcpy(k, kp, len);
        memcpy(k + len, sfx, n + 1);
    }
    return k;
}

static void keys_free(rc_adapter *a, char **k)
{
    size_t i;

    for (i = 0; i < 5; i++) {
        rc__free(&a->mem, k[i]);
        k[i] = NULL;
    }
}

static int set_keys(rc_adapter *a, const char *kp)
{
    rc__node *n = &a->node;
    size_t len = strlen(kp);
    char *k[5];

    k[0] = key(a, kp, len, "");
    k[1] = key(a, kp, len, "{nodes}");
    k[2] = key(a, kp, len, "{nodes}:token");
    k[3] = key(a, kp, len, "{nodes}:live");
    k[4] = key(a, kp, len, "{sweep}");
    if (!k[0] || !k[1] || !k[2] || !k[3] || !k[4]) {
        keys_free(a, k);
        return RC_ENOMEM;
    }
    rc__node_free(a);
    n->kp = k[0];
    n->key_nodes = k[1];
    n->key_tok = k[2];
    n->key_live = k[3];
    n->key_sweep = k[4];
    return 0;
}

int rc__node_init(rc_adapter *a)
{
    rc__node *n = &a->node;
    unsigned char raw[16];
    uint64_t at = (uint64_t)(uintptr_t)a;
    size_t i;

    /* The token only has to differ between live holders of one id: the
     * hash seed and the adapter's address will do without random bytes. */
    if (rc__random(raw, sizeof raw) != 0) {
        memcpy(raw, &a->seed, 8);
        memcpy(raw + 8, &at, 8);
    }
    for (i = 0; i < sizeof raw; i++) {
        n->token[2 * i] = "0123456789abcdef"[raw[i] >> 4];
        n->token[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
    }
    n->token[32] = '\0';
    n->lease_ms = DEFAULT_LEASE_MS;
    return set_keys(a, DEFAULT_KEY_PREFIX);
}

void rc__node_free(rc_adapter *a)
{
    rc__node *n = &a->node;
    char *k[5];

    k[0] = n->kp, k[1] = n->key_nodes, k[2] = n->key_tok;
    k[3] = n->key_live, k[4] = n->key_sweep;
    keys_free(a, k);
    n->kp = n->key_nodes = n->key_tok = n->key_live = n->key_sweep = NULL;
}

static void set_state(rc_adapter *a, int state, int err)
{
    rc__node *n = &a->node;
    int changed = n->state != state;

    n->state = state;
    if ((changed || err != 0) && n->cb != NULL && !a->closing) {
        rc__enter(a);
        n->cb(a, state, err, n->user);
        rc__exit(a);
    }
}

static void on_lease(rc_adapter *a, const rc__reply *r, int err, void *arg)
{
    rc__node *n = &a->node;
    long long ok, dl, lapsed;

    if ((unsigned)(uintptr_t)arg != n->gen || a->closing)
        return; /* asked on a context since let go of */
    n->asking = 0;
    if (err == RC_EMISUSE)
        return; /* lost with the link: the next context asks again */
    if (err == 0 &&
        (rc__reply_int(r, 0, &ok) != 0 || rc__reply_int(r, 1, &dl) != 0 ||
         rc__reply_int(r, 3, &lapsed) != 0))
        err = RC_EREDIS;
    if (err != 0) {
        /* Refused (a cluster node says CLUSTERDOWN for a while after a
         * restart): so was the presence this context put back; the first
         * lease that works finds the token lapsed and puts it back. */
        n->fresh = 0;
        set_state(a, n->state, RC_EREDIS);
        return;
    }
    n->live_dl = dl;
    /* Reapers took this node for dead: its presence is put back (a new
     * context has just done so, after this lease call). */
    if (lapsed && !n->fresh)
        rc__presence_resync(a);
    n->fresh = 0;
    if (ok == 1)
        set_state(a, RC_NODE_LIVE, 0);
    else
        set_state(a, RC_NODE_REFUSED, RC_ENODEID);
}

/* Claim or renew (the same script), or release. */
static void ask(rc_adapter *a, int script)
{
    rc__node *n = &a->node;
    char lease[24], last[24];
    const char *argv[7];
    size_t len[7], i;

    argv[0] = n->key_nodes;
    argv[1] = n->key_tok;
    argv[2] = n->key_live;
    argv[3] = a->node_id;
    argv[4] = n->token;
    argv[5] = lease;
    argv[6] = last;
    for (i = 0; i < 5; i++)
        len[i] = strlen(argv[i]);
    len[5] = (size_t)(rc__dec_put(lease, n->lease_ms) - lease);
    len[6] = (size_t)(rc__dec_put(last, (unsigned long long)n->live_dl) - last);
    if (script == RC__SCRIPT_RELEASE) {
        (void)rc__port_script(a, script, 3, 5, argv, len, NULL, NULL);
        return;
    }
    if (rc__port_script(a, script, 3, 7, argv, len, on_lease,
                        (void *)(uintptr_t)n->gen) == 0) {
        n->asking = 1;
        n->owed = 0;
    } else { /* out of memory: the next tick asks again */
        a->c.script_errors++;
        n->owed = 1;
    }
}

void rc__node_let_go(rc_adapter *a)
{
    if (a->node.state != RC_NODE_OFF && rc__port_has_pub(a))
        ask(a, RC__SCRIPT_RELEASE);
}

void rc__node_pub_changed(rc_adapter *a)
{
    rc__node *n = &a->node;

    n->gen++;
    n->asking = n->owed = 0;
    n->fresh = 1;
    n->due = 0;
    if (!rc__port_has_pub(a)) {
        set_state(a, RC_NODE_OFF, 0);
        return;
    }
    ask(a, RC__SCRIPT_LEASE);
    /* Presence goes after the lease on the connection, which renews the
     * token's liveness first. */
    rc__presence_resync(a);
    rc__hist_pub_changed(a);
    /* A refused id stays refused until Redis says otherwise. */
    if (n->state != RC_NODE_REFUSED)
        set_state(a, RC_NODE_CLAIMING, 0);
}

unsigned rc_adapter_tick(rc_adapter *a, unsigned long long now)
{
    rc__node *n;
    unsigned beat, next;

    if (a == NULL)
        return 1000;
    n = &a->node;
    beat = n->lease_ms / 3;
    if (a->closing)
        return beat;
    if (!rc__port_has_pub(a))
        return rc__presence_tick(a, now);
    if (n->due == 0)
        n->due = now + beat;
    if ((now >= n->due || n->owed) && !n->asking) {
        n->due = now + beat;
        ask(a, RC__SCRIPT_LEASE);
    }
    next = rc__presence_tick(a, now);
    beat = rc__admit_tick(a, now);
    next = beat < next ? beat : next;
    if (n->due > now && n->due - now < next)
        next = (unsigned)(n->due - now);
    return next > 0 ? next : 1;
}

int rc_adapter_set_state_options(rc_adapter *a, const rc_state_options *opts,
                                 size_t size)
{
    rc_state_options o;
    int rv;

    if (a == NULL || opts == NULL)
        return RC_EINVAL;
    memset(&o, 0, sizeof o);
    memcpy(&o, opts, size < sizeof o ? size : sizeof o);
    if (o.lease_ms != 0 &&
        (o.lease_ms < MIN_LEASE_MS || o.lease_ms > MAX_LEASE_MS))
        return RC_EINVAL;
    if (a->closing || a->port.pub != NULL || a->node.gen > 0)
        return RC_EMISUSE;
    rv = set_keys(a, o.key_prefix ? o.key_prefix : DEFAULT_KEY_PREFIX);
    if (rv == 0) {
        a->node.lease_ms = o.lease_ms ? o.lease_ms : DEFAULT_LEASE_MS;
        a->adm.verify_ms = o.verify_ms;
    }
    return rv;
}

void rc_adapter_set_node_cb(rc_adapter *a, rc_node_cb cb, void *user)
{
    if (a == NULL)
        return;
    a->node.cb = cb;
    a->node.user = cb ? user : NULL;
}

int rc_adapter_node_state(const rc_adapter *a)
{
    return a != NULL ? a->node.state : RC_NODE_OFF;
}
