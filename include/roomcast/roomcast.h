/*
 * roomcast: fan Server-Sent Events out to rooms across server processes
 * through Redis Pub/Sub.
 *
 * This header is the core API. It needs no event loop and no Redis: the
 * envelope codec and the SSE formatter below are pure functions over bytes.
 *
 * Conventions, for every function here unless its comment says otherwise:
 * - Errors are negative RC_E* codes; 0 (or a count) means success. There is
 *   no RC_OK. rc_strerror() turns a code into text.
 * - Pointers passed in are borrowed for the duration of the call; roomcast
 *   copies what it keeps and never frees what it did not allocate.
 * - Nothing is global. The codec functions are reentrant and may be called
 *   from any thread, as long as no two threads share an output buffer.
 */
#ifndef ROOMCAST_H
#define ROOMCAST_H

#include <stddef.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ROOMCAST_EXTERN __attribute__((visibility("default")))
#else
#define ROOMCAST_EXTERN
#endif

/* ---- Version --------------------------------------------------------- */

/** Run-time version as 0xMMmmpp (see ROOMCAST_VERSION_HEX). */
ROOMCAST_EXTERN unsigned rc_version(void);

/** Run-time version as "MAJOR.MINOR.PATCH"; static storage, never NULL. */
ROOMCAST_EXTERN const char *rc_version_string(void);

/* ---- Errors ---------------------------------------------------------- */

/*
 * Every error roomcast returns. The list only grows: codes are never
 * renumbered or reused. The decode reasons (RC_EJSON onwards) are distinct
 * so that hosts can count rejected envelopes by reason.
 */
#define RC_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(EMISUSE, -3, "call not allowed in this state")                           \
    X(ETOOBIG, -4, "message over the size limit")                              \
    X(ENOBUFS, -5, "output buffer too small")                                  \
    X(EJSON, -6, "not valid JSON")                                             \
    X(EDEPTH, -7, "JSON nested deeper than the limit")                         \
    X(EUTF8, -8, "invalid UTF-8 or lone surrogate in a string")                \
    X(ENOTENV, -9, "envelope is not a JSON object")                            \
    X(EVERSION, -10, "envelope version is missing or not 1")                   \
    X(ENOMSG, -11, "envelope has no message object")                           \
    X(ENODATA, -12, "message has no data")                                     \
    X(ETYPE, -13, "field missing or of the wrong type")                        \
    X(ERETRY, -14, "retry is not a non-negative integer")                      \
    X(ECHAR, -15, "CR, LF or NUL in event, id, node or except")                \
    X(EEXIST, -16, "connection id already in use")                             \
    X(EURL, -17, "invalid Redis URL")                                          \
    X(ERANDOM, -18, "no random bytes from the system for an id")               \
    X(ENODEID, -19, "node id held by another live node")                       \
    X(EREDIS, -20, "Redis answered with an error")                             \
    X(ELIMITED, -21, "over the rate limit")                                    \
    X(EFULL, -22, "room is full")                                              \
    X(ECLOSED, -23, "room is closed")                                          \
    X(ENOROOM, -24, "no such room")                                            \
    X(EUNAVAIL, -25, "Redis is unavailable: admission fails closed")           \
    X(ENOTMEMBER, -26, "user holds no seat in the room")                       \
    X(ENOCODE, -27, "no free room code")

enum rc_errno {
#define RC_ERRNO_ENUM_(name, value, text) RC_##name = value,
    RC_ERRNO_MAP(RC_ERRNO_ENUM_)
#undef RC_ERRNO_ENUM_
};

/** Text for an error code, e.g. "not valid JSON". Static storage, never
 *  NULL; an unknown code gives "unknown error". */
ROOMCAST_EXTERN const char *rc_strerror(int err);

/** Name of an error code without its prefix, e.g. "EJSON" for RC_EJSON
 *  (useful as a metrics label). Static storage, never NULL; an unknown code
 *  gives "EUNKNOWN". */
ROOMCAST_EXTERN const char *rc_err_name(int err);

/* ---- Messages and limits -------------------------------------------- */

/**
 * One SSE message, filled by the host. A value, not a handle: roomcast only
 * reads it during the call it is passed to.
 *
 * - data: JSON text (any JSON value), data_len bytes, not NUL-terminated.
 *   Required; it travels byte for byte (whitespace around the value is not
 *   part of it and is dropped).
 * - event, id: NUL-terminated UTF-8 or NULL for none. CR and LF are refused
 *   (RC_ECHAR), as is invalid UTF-8 (RC_EUTF8).
 * - retry: reconnection delay in ms, 0 .. 2^53-1; negative means none.
 *
 * A zeroed rc_message is invalid (no data). Note that retry 0 is a value:
 * start from RC_MESSAGE_INIT to get "no retry".
 */
typedef struct rc_message {
    const char *event;
    const char *data;
    size_t data_len;
    const char *id;
    long long retry;
} rc_message;

/* clang-format off */
#define RC_MESSAGE_INIT {NULL, NULL, 0, NULL, -1}
/* clang-format on */

/** The largest retry a message may carry (JavaScript's largest safe
 *  integer, so that every peer reads the same number). */
#define RC_RETRY_MAX 9007199254740991LL

/** Defaults used where an rc_limits field is 0 or the pointer is NULL. */
#define RC_DEFAULT_MAX_DATA ((size_t)1 << 20) /* 1 MiB of data JSON text */
#define RC_DEFAULT_MAX_DEPTH 64u
/** max_depth is clamped to this. */
#define RC_MAX_DEPTH_LIMIT 1024u
/** Besides data, an envelope may hold this many bytes (keys, event, id,
 *  node, except, meta, unknown keys). */
#define RC_ENVELOPE_SLACK ((size_t)64 << 10)

/**
 * Size and nesting limits applied by the codec, on both sides. A zeroed
 * struct (or a NULL pointer) means the defaults.
 * - max_data: longest data JSON text. An envelope may be at most
 *   max_data + RC_ENVELOPE_SLACK bytes in all.
 * - max_depth: deepest nesting of arrays/objects within one value (data,
 *   meta, or the value of an unknown key); "[]" has depth 1.
 */
typedef struct rc_limits {
    size_t max_data;
    unsigned max_depth;
} rc_limits;

/**
 * Check a message as rc_envelope_encode() would: data present, valid JSON
 * within the limits; event and id free of CR/LF and valid UTF-8; retry
 * within range. limits may be NULL (defaults).
 *
 * Returns 0, or RC_EINVAL (msg NULL), RC_ENODATA, RC_EJSON, RC_EDEPTH,
 * RC_EUTF8, RC_ETOOBIG, RC_ECHAR, RC_ERETRY.
 */
ROOMCAST_EXTERN int rc_message_check(const rc_message *msg,
                                     const rc_limits *limits);

/* ---- Envelope codec -------------------------------------------------- */

/**
 * The Redis payload: a message plus routing fields. On the wire:
 * {"v":1,"m":{"event":E,"data":D,"id":I,"retry":R},"n":NODE,"e":EXCEPT,
 *  "meta":META}, compact, optional keys left out when absent.
 *
 * - node: the publishing node's id, NUL-terminated, required.
 * - except: id of the connection that must not receive it, or NULL.
 * - meta: raw JSON text of meta_len bytes, or NULL for none.
 * event, id, node and except follow the rules of rc_message's event.
 */
typedef struct rc_envelope {
    rc_message msg;
    const char *node;
    const char *except;
    const char *meta;
    size_t meta_len;
} rc_envelope;

/**
 * Encode env as one compact JSON envelope into buf (size bytes). Strings
 * are escaped exactly as JavaScript's JSON.stringify escapes them; data and
 * meta are copied through as given (without the whitespace around them),
 * after being validated.
 *
 * On success returns 0 and stores the length written in *len (no NUL is
 * written). If size is too small returns RC_ENOBUFS and stores the length
 * needed in *len; buf may be NULL when size is 0, to ask for the size.
 * limits may be NULL (defaults).
 *
 * Errors: RC_EINVAL (env or len NULL, or buf NULL with size > 0),
 * RC_ENOBUFS, and any error of rc_message_check() for env->msg; RC_ETYPE
 * when node is NULL; RC_ECHAR or RC_EUTF8 for node/except; RC_EJSON or
 * RC_EDEPTH for meta; RC_ETOOBIG when the envelope would exceed the limits.
 * On error buf's content is unspecified.
 */
ROOMCAST_EXTERN int rc_envelope_encode(const rc_envelope *env,
                                       const rc_limits *limits, char *buf,
                                       size_t size, size_t *len);

/**
 * Decode one envelope of len bytes (as received from Redis) into *out,
 * strictly: the input must be one valid JSON object (RFC 8259, UTF-8)
 * whose "v" is the number 1, with an object "m" holding "data", and
 * string "n". Keys may come in any order, a duplicate key's last value
 * wins (as in JSON.parse), unknown keys are validated and ignored.
 *
 * Decoding allocates nothing. On success:
 * - out->msg.data / data_len and out->meta / meta_len point into buf, byte
 *   for byte as received (valid while buf is);
 * - out->msg.event, msg.id, node and except are unescaped, NUL-terminated
 *   strings written into scratch (valid while scratch is), or NULL;
 * - out->msg.retry is the retry, or -1.
 * scratch must hold the unescaped strings plus their NULs: scratch_size >=
 * len always suffices. limits may be NULL (defaults).
 *
 * Returns 0 or, by reason: RC_ETOOBIG (input or data over the limits),
 * RC_EJSON (not JSON: syntax, truncation, bad escape, raw control
 * character), RC_EDEPTH, RC_EUTF8 (invalid UTF-8 anywhere, or a lone
 * surrogate escape in event/id/n/e), RC_ENOTENV (valid JSON, not an
 * object), RC_EVERSION, RC_ENOMSG, RC_ENODATA, RC_ETYPE (event, id, n or e
 * not a string; n missing), RC_ERETRY, RC_ECHAR (CR/LF/NUL in event, id, n
 * or e); RC_EINVAL for NULL arguments; RC_ENOBUFS if scratch is too small.
 * On error *out is unspecified.
 */
ROOMCAST_EXTERN int rc_envelope_decode(const char *buf, size_t len,
                                       const rc_limits *limits,
                                       rc_envelope *out, char *scratch,
                                       size_t scratch_size);

/* ---- SSE framing ----------------------------------------------------- */

/**
 * Format msg as one SSE frame, byte-identical to what clients of the Node
 * reference receive: "id: I\n" (if id is non-empty), "event: E\n" (if
 * event is non-empty), one "data: L\n" per line L of data (lines end at
 * CRLF, CR or LF), "retry: R\n" (if retry > 0), then "\n". data, without
 * the JSON whitespace around it, is written as given; it is not checked to
 * be JSON here (rc_message_check does).
 *
 * Same buffer convention as rc_envelope_encode(): 0 and *len = bytes
 * written, or RC_ENOBUFS and *len = bytes needed (buf may be NULL when size
 * is 0).
 *
 * Errors: RC_EINVAL (msg or len NULL, buf NULL with size > 0), RC_ENODATA
 * (data NULL or only whitespace), RC_ECHAR (CR or LF in event or id),
 * RC_EUTF8 (event or id not valid UTF-8), RC_ERETRY (retry over
 * RC_RETRY_MAX), RC_ENOBUFS.
 */
ROOMCAST_EXTERN int rc_sse_format(const rc_message *msg, char *buf, size_t size,
                                  size_t *len);

/* ---- The adapter ---------------------------------------------------- */

/*
 * An adapter holds one node's local connections and their rooms, and
 * links them to other nodes through two hiredis async contexts: one that
 * publishes and one in subscribed mode. Broadcasting to a room delivers to
 * local members first, then publishes one envelope on "<prefix><room>";
 * other nodes' adapters receive it and deliver to their members.
 *
 * Threads: an adapter, its connections and its frames belong to one
 * thread, the one running the loop its hiredis contexts are attached to;
 * every function from here to the end of this header is called on that
 * thread only (no function here locks). Callbacks (sinks, the filter, room
 * events) run on that thread, from inside the call that caused them (a
 * broadcast, a join) or from hiredis' reply handling.
 *
 * Re-entry: any rc_ call may be made from inside any callback, including
 * rc_conn_remove of the connection being served and rc_adapter_free; the
 * work finishes when the outermost call returns, and from rc_adapter_free
 * on no callback of that adapter runs again.
 *
 * Ownership: strings passed in are copied when kept; pointers handed to
 * callbacks (room names, messages, frames) are valid for the call only,
 * except frames the host references (rc_frame_ref). `user` pointers are
 * never read or freed by roomcast.
 */

struct redisAsyncContext;

typedef struct rc_adapter rc_adapter;
/** One local client connection (an SSE stream), registered by the host. */
typedef struct rc_conn rc_conn;
/** One formatted SSE frame, shared by every local recipient. Refcounted. */
typedef struct rc_frame rc_frame;

/**
 * Deliver frame to the connection's client. frame and msg are valid until
 * the sink returns; to keep the frame longer (e.g. to hand its bytes to
 * evbuffer_add_reference), take a reference with rc_frame_ref() and drop
 * it with rc_frame_unref() when done. Return 0 if the frame was accepted,
 * nonzero if not (the client is gone or too slow): that delivery is counted
 * as a sink error and the other connections carry on.
 */
typedef int (*rc_sink_cb)(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                          void *user);

/**
 * Optional pre-delivery filter, on the local and the remote path alike.
 * meta is the broadcast's raw JSON meta (meta_len bytes) or NULL. Return
 * 0 to deliver, nonzero to skip this connection (counted as filtered). A
 * filter that removes conn (or frees the adapter) skips it whatever it
 * returns.
 */
typedef int (*rc_filter_cb)(rc_conn *conn, const rc_message *msg,
                            const char *meta, size_t meta_len, void *user);

/** Room subscription events for rc_adapter_set_room_cb(). */
enum rc_room_event {
    RC_ROOM_READY = 1, /* SUBSCRIBE confirmed: members will receive */
    RC_ROOM_LOST = 2   /* the subscription is gone (sub context gone) */
};

/** A room event; room is valid for the call. Told only for rooms with
 *  local members. */
typedef void (*rc_room_cb)(rc_adapter *a, const char *room, int event,
                           void *user);

/** Allocator hooks, per adapter. NULL functions mean libc's. */
typedef struct rc_alloc {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *ptr, size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} rc_alloc;

/** Options for rc_adapter_open(). A zeroed struct means the defaults. */
typedef struct rc_adapter_options {
    const char *prefix;    /* channel prefix; NULL: "sse:room:" */
    const char *node_id;   /* NULL: a random UUID v4 */
    const rc_alloc *alloc; /* NULL: libc; copied, not kept */
    rc_limits limits;      /* for envelopes sent and received */
    unsigned dedup_window; /* envelopes remembered per connection on the
                              remote path; 0: 8; at most RC_MAX_DEDUP */
} rc_adapter_options;

/** The default channel prefix. */
#define RC_DEFAULT_PREFIX "sse:room:"
/** The largest rc_adapter_options.dedup_window. */
#define RC_MAX_DEDUP 4096u

/** Flags for rc_broadcast_to_room() and rc_broadcast(). */
#define RC_LOCAL_ONLY 1u /* deliver to local members, publish nothing */

/**
 * Create an adapter. pub and sub are hiredis async contexts already
 * attached to the host's loop (see rc_adapter_set_pub/sub for the rules);
 * either may be NULL: with both NULL the adapter is local only. prefix
 * NULL means RC_DEFAULT_PREFIX (it may be ""); node_id NULL means a random
 * UUID v4. Both strings are copied. Returns the adapter (free it with
 * rc_adapter_free), or NULL on any error of rc_adapter_open(), which tells
 * them apart.
 */
ROOMCAST_EXTERN rc_adapter *rc_adapter_new(struct redisAsyncContext *pub,
                                           struct redisAsyncContext *sub,
                                           const char *prefix,
                                           const char *node_id);

/**
 * Create an adapter with options (NULL: defaults; copied, not kept).
 * Returns 0 and sets *out, or RC_EINVAL (out NULL, dedup_window over
 * RC_MAX_DEDUP), RC_ECHAR / RC_EUTF8 (node_id), RC_ERANDOM (node_id NULL
 * and the system gave no random bytes), RC_ENOMEM. On error nothing is
 * kept and the contexts are untouched.
 */
ROOMCAST_EXTERN int rc_adapter_open(const rc_adapter_options *opts,
                                    struct redisAsyncContext *pub,
                                    struct redisAsyncContext *sub,
                                    rc_adapter **out);

/**
 * Free the adapter: every connection is removed, every subscribed channel
 * is unsubscribed (a SUBSCRIBE still unconfirmed is undone when its reply
 * comes), and from here on no callback of the adapter runs. NULL is
 * allowed; so is a call from inside a callback (the rest finishes when the
 * outermost call returns). The memory is released then; for a context
 * that still owes replies (pending PUBLISHes, channels) a small record
 * stays until hiredis answers them or frees the context, after which the
 * context's event hooks are as the host attached them. The contexts stay
 * the host's.
 */
ROOMCAST_EXTERN void rc_adapter_free(rc_adapter *a);

/**
 * Give the adapter a (new) publishing context, or NULL to take it back
 * (call it with NULL from the context's disconnect callback, and with the
 * fresh context once it is connected). The adapter registers no connect or
 * disconnect callback and never frees a context; it does put its own
 * forwarding functions in front of the context's event hooks (ac->ev), to
 * notice by itself when the context is freed or disconnected: from then on
 * it sends nothing on it, whether or not the host said so. So attach the
 * context to its loop before handing it over, and do not use hiredis'
 * adapters that read ac->ev.data themselves (poll.h, qt.h). The hooks are
 * given back when the adapter lets go of the context.
 *
 * Calling rc_adapter_set_pub or rc_adapter_set_sub at all, even with NULL,
 * makes a local-only adapter a linked one: from then on its rooms are
 * ready only once subscribed, and broadcasts count publishes that cannot
 * be sent. Returns 0, or RC_EINVAL (a NULL), RC_EMISUSE (a context given
 * to an adapter that rc_adapter_free has been called on), RC_ENOMEM (then
 * nothing changed).
 */
ROOMCAST_EXTERN int rc_adapter_set_pub(rc_adapter *a,
                                       struct redisAsyncContext *pub);

/**
 * Give the adapter a (new) subscribing context, or NULL to take it back,
 * with the rules of rc_adapter_set_pub. Every room that was subscribed on
 * the old context reports RC_ROOM_LOST; on a new context the adapter
 * subscribes every room that has local members, in batches, and each
 * reports RC_ROOM_READY when confirmed. The context may speak RESP2 or
 * (hiredis 1.1 and later) RESP3. A context taken back while it still held
 * the adapter's channels cannot be handed back to it (hiredis would
 * replace their callbacks silently): give it a fresh one.
 *
 * Returns 0, or RC_EINVAL, RC_EMISUSE (the adapter is being freed, or sub
 * was taken back from this adapter while still subscribed), RC_ENOMEM (no
 * context changed), or the error of a SUBSCRIBE that could not be sent
 * (RC_ENOMEM, RC_EMISUSE: the context is going away): the context is
 * taken all the same, the failure is counted in subscribe_errors, and the
 * rooms are subscribed at the next reply on it or the next call here.
 */
ROOMCAST_EXTERN int rc_adapter_set_sub(rc_adapter *a,
                                       struct redisAsyncContext *sub);

/** The node id (NUL-terminated, valid for the adapter's life, never NULL;
 *  a must not be NULL). */
ROOMCAST_EXTERN const char *rc_adapter_node_id(const rc_adapter *a);

/** Set (or with cb NULL, clear) the pre-delivery filter; user is passed
 *  back to it. A NULL adapter is ignored. */
ROOMCAST_EXTERN void rc_adapter_set_filter(rc_adapter *a, rc_filter_cb cb,
                                           void *user);

/** Set (or with cb NULL, clear) the room event callback; user is passed
 *  back to it. A NULL adapter is ignored. */
ROOMCAST_EXTERN void rc_adapter_set_room_cb(rc_adapter *a, rc_room_cb cb,
                                            void *user);

/* ---- Connections and rooms ------------------------------------------- */

/**
 * Register a local connection with id conn_id (copied; NULL: a random
 * UUID v4) and its sink (required). user is handed back to the sink and is
 * never read or freed. Returns 0 and sets *out (valid until
 * rc_conn_remove or rc_adapter_free), or RC_EINVAL (a, sink or out NULL),
 * RC_EMISUSE (rc_adapter_free was called), RC_ECHAR / RC_EUTF8 (conn_id),
 * RC_EEXIST (id already registered here), RC_ERANDOM (no id given and no
 * random bytes), RC_ENOMEM.
 */
ROOMCAST_EXTERN int rc_conn_add(rc_adapter *a, const char *conn_id,
                                rc_sink_cb sink, void *user, rc_conn **out);

/**
 * Remove a connection: it leaves all its rooms (unsubscribing rooms left
 * empty) and its sink and the filter are never called for it again, even
 * when this is called from inside a sink or the filter. conn is invalid
 * once the outermost call returns. NULL is allowed.
 */
ROOMCAST_EXTERN void rc_conn_remove(rc_conn *conn);

/** The connection with this id, or NULL (also for NULL arguments). */
ROOMCAST_EXTERN rc_conn *rc_conn_find(rc_adapter *a, const char *conn_id);

/** The connection's id (NUL-terminated, owned by the connection, valid
 *  until rc_conn_remove), its user pointer, and its adapter. conn must be
 *  a live connection (not NULL). */
ROOMCAST_EXTERN const char *rc_conn_id(const rc_conn *conn);
ROOMCAST_EXTERN void *rc_conn_user(const rc_conn *conn);
ROOMCAST_EXTERN rc_adapter *rc_conn_adapter(const rc_conn *conn);

/**
 * Join a room (the name is copied). The first local member makes the
 * adapter SUBSCRIBE; rc_room_is_ready() and RC_ROOM_READY tell when that is
 * confirmed (a SUBSCRIBE that cannot be sent is counted in
 * subscribe_errors and sent again later: the join still succeeds). Returns
 * 1 if joined, 0 if already a member (nothing changes), or RC_EINVAL (NULL
 * arguments, or conn removed), RC_ENOMEM (nothing changes).
 */
ROOMCAST_EXTERN int rc_room_join(rc_conn *conn, const char *room);

/** Leave a room; the last local member leaving makes the adapter
 *  UNSUBSCRIBE. Returns 1 if left, 0 if not a member (or an unknown room),
 *  RC_EINVAL (NULL arguments). */
ROOMCAST_EXTERN int rc_room_leave(rc_conn *conn, const char *room);

/**
 * Join, or leave, n rooms at once (a name may repeat). Returns how many
 * rooms were joined (left) by the call, or RC_EINVAL (conn NULL, rooms NULL
 * with n > 0, a NULL name; nothing changes then) or RC_ENOMEM: the rooms
 * before the failing one stay joined (rc_conn_rooms tells which).
 */
ROOMCAST_EXTERN int rc_room_join_list(rc_conn *conn, const char *const *rooms,
                                      size_t n);
ROOMCAST_EXTERN int rc_room_leave_list(rc_conn *conn, const char *const *rooms,
                                       size_t n);

/**
 * Leave every room the connection is in when the call begins, in join
 * order; cb (may be NULL) is called after each with the room's name (valid
 * for the call). cb may call anything, rc_conn_remove of this connection
 * and rc_adapter_free included: the walk then stops (after
 * rc_adapter_free, cb is not called again). Returns how many rooms were
 * left, or RC_EINVAL (conn NULL).
 */
ROOMCAST_EXTERN int rc_room_leave_all(rc_conn *conn,
                                      void (*cb)(const char *room, void *user),
                                      void *user);

/** Is this connection in the room? 1 or 0 (0 for NULL arguments). */
ROOMCAST_EXTERN int rc_room_has(const rc_conn *conn, const char *room);

/** Number of local members of a room (0 for an unknown room or NULL
 *  arguments). */
ROOMCAST_EXTERN size_t rc_room_size(const rc_adapter *a, const char *room);

/**
 * 1 if a broadcast to this room from another node would reach its local
 * members now: the room's SUBSCRIBE is confirmed (a local-only adapter's
 * rooms are always ready). 0 otherwise, or for a room without members.
 */
ROOMCAST_EXTERN int rc_room_is_ready(const rc_adapter *a, const char *room);

/**
 * The local members of a room in join order: stores up to max connection
 * pointers in out and returns how many members there are in all (call
 * with max 0 to count; 0 for an unknown room). The pointers are valid
 * until the next change.
 */
ROOMCAST_EXTERN size_t rc_room_members(const rc_adapter *a, const char *room,
                                       rc_conn **out, size_t max);

/** The rooms of a connection in join order, as rc_room_members does. The
 *  names are owned by the adapter, valid until the connection's rooms
 *  change. */
ROOMCAST_EXTERN size_t rc_conn_rooms(const rc_conn *conn, const char **out,
                                     size_t max);

/** Every room with local members (in no particular order), as
 *  rc_room_members does; names owned by the adapter, valid until the next
 *  change. */
ROOMCAST_EXTERN size_t rc_adapter_rooms(const rc_adapter *a, const char **out,
                                        size_t max);

/* ---- Broadcasting ---------------------------------------------------- */

/**
 * Broadcast msg to a room: deliver to local members (skipping the
 * connection with id except_conn_id, if any, and those the filter refuses)
 * with one shared frame, then publish one envelope on the room's channel,
 * unless flags has RC_LOCAL_ONLY or the adapter is local only (created
 * without contexts). The message is validated first (rc_message_check);
 * nothing is delivered or published if it is invalid. msg and the strings
 * are borrowed for the call. Returns the number of sinks that accepted
 * (>= 0), or RC_EINVAL (NULL arguments), RC_EMISUSE (rc_adapter_free was
 * called), any rc_message_check error, RC_ETOOBIG (the envelope would
 * exceed the limits), RC_ENOMEM. A publish that cannot be sent (no pub
 * context right now: the link is down), or whose reply is an error, fails
 * fast and is counted in publish_errors; it does not change the result.
 */
ROOMCAST_EXTERN int rc_broadcast_to_room(rc_adapter *a, const char *room,
                                         const rc_message *msg,
                                         const char *except_conn_id,
                                         unsigned flags);

/** What rc_broadcast() takes besides the message. Zeroed: no except, no
 *  meta, no flags. */
typedef struct rc_broadcast_options {
    const char *except_conn_id;
    const char *meta; /* raw JSON, meta_len bytes, travels as is */
    size_t meta_len;
    unsigned flags;
} rc_broadcast_options;

/**
 * Broadcast to several rooms: one envelope is published per room. A local
 * connection in more than one of them receives the message once. On other
 * nodes, a connection in several of the rooms receives it once per room,
 * unless the message has a non-empty id: then it receives it once, as long
 * as the other rooms' copies come within its de-dup window (the last
 * dedup_window envelopes it got, keyed by their bytes and the room they
 * came through, never by the id alone: a message with the same id and
 * other content, or the same envelope again in the same room, is a new
 * message). opts may be NULL. Returns as
 * rc_broadcast_to_room does (RC_EINVAL also for rooms NULL with nrooms > 0
 * or a NULL room name), plus RC_EJSON / RC_EDEPTH for an invalid meta.
 */
ROOMCAST_EXTERN int rc_broadcast(rc_adapter *a, const char *const *rooms,
                                 size_t nrooms, const rc_message *msg,
                                 const rc_broadcast_options *opts);

/* ---- Frames ---------------------------------------------------------- */

/** The frame's bytes (not NUL-terminated) and their number; valid while
 *  the frame is (for the sink call, or until the last rc_frame_unref).
 *  Frames are refcounted without atomics: ref and unref them on the
 *  adapter's thread. frame must not be NULL. */
ROOMCAST_EXTERN const char *rc_frame_data(const rc_frame *frame);
ROOMCAST_EXTERN size_t rc_frame_size(const rc_frame *frame);
/** Take a reference (returns frame, which must not be NULL). A frame may
 *  outlive its adapter. */
ROOMCAST_EXTERN rc_frame *rc_frame_ref(rc_frame *frame);
/** Drop a reference; the last one frees the frame. NULL is allowed. */
ROOMCAST_EXTERN void rc_frame_unref(rc_frame *frame);

/* ---- Counters -------------------------------------------------------- */

/** Slots of rc_counters.rejected: indexed by -code of the decode error. */
#define RC_REJECT_SLOTS 32

typedef struct rc_counters {
    unsigned long long published;      /* PUBLISH replies received OK */
    unsigned long long publish_errors; /* not sent, error reply, or lost */
    unsigned long long received;       /* messages read from Redis */
    unsigned long long echoes;         /* our own envelopes, dropped */
    unsigned long long rejected;       /* bad envelopes, dropped */
    unsigned long long rejected_by[RC_REJECT_SLOTS]; /* by -RC_E* code */
    unsigned long long duplicates;  /* same id to same conn, dropped */
    unsigned long long delivered;   /* sinks that accepted */
    unsigned long long filtered;    /* refused by the filter */
    unsigned long long sink_errors; /* sinks that refused */
    unsigned long long subscribes_sent, subscribes_confirmed;
    unsigned long long unsubscribes_sent, unsubscribes_confirmed;
    unsigned long long connections, rooms, memberships; /* gauges */
    /* (UN)SUBSCRIBE commands that could not be sent (the sub context was
     * going away, or memory ran out); each is tried again later */
    unsigned long long subscribe_errors;
    /* Of publish_errors, the PUBLISHes handed to a connection whose reply
     * was lost with the link: Redis may have delivered them. The others
     * were never sent or were refused, and reached nobody. */
    unsigned long long publish_unconfirmed;
    /* Script calls (the node's lease, room state) answered with an error,
     * or lost with the link. */
    unsigned long long script_errors;
    /* Presence events held for members awaiting their snapshot, and
     * given to them after it (the snapshot/diff race, closed). */
    unsigned long long presence_held;
    /* Rate checks allowed unchecked (no memory for a local bucket). */
    unsigned long long rate_unchecked;
    /* Local connections taken out of a room by the library (closed, or
     * their user evicted or without a seat): each told to the end
     * callback. */
    unsigned long long ended;
    /* Cluster-wide rate checks decided on this node's local share (no
     * Redis link at the time). */
    unsigned long long rate_local;
    /* History: messages replayed from it to members behind (resumes,
     * gaps on the sub link); rc:reset frames sent (what could not be
     * replayed); epochs this node fenced. */
    unsigned long long history_repaired, history_resets, history_fenced;
    /* Subscriptions a transport reported lost one by one (a cluster
     * shard went away, a slot moved); each room subscribed again. */
    unsigned long long rooms_lost;
} rc_counters;

/**
 * Copy the counters into *out, of size bytes (pass sizeof *out: fields
 * are only ever added at the end, and a smaller size gets the prefix).
 * A NULL adapter gives zeros; a NULL out is ignored.
 */
ROOMCAST_EXTERN void rc_adapter_counters(const rc_adapter *a, rc_counters *out,
                                         size_t size);

/* ---- The node's lease, and time -------------------------------------- */

/*
 * A linked adapter holds its node id in Redis while it lives: a lease
 * naming the id and a random token of this adapter, with a deadline taken
 * from Redis' clock (TIME), claimed when a pub context is handed over and
 * renewed by rc_adapter_tick. A second adapter given an id that a live
 * one holds is refused (RC_NODE_REFUSED, RC_ENODEID): it publishes
 * nothing (each publish counted in publish_errors), so that it never
 * makes the holder drop messages as its own echoes, and it asks again at
 * every beat, taking the id over once the holder lets go of it (by
 * handing back its connected pub context or freeing the adapter) or its
 * lease runs out (a dead node). Its subscriptions stay: it still receives
 * what the other nodes publish.
 *
 * Keys (under the key prefix, default "rc:"): "<kp>{nodes}" a sorted set
 * of node id -> lease deadline (ms of Redis time), "<kp>{nodes}:token" a
 * hash of node id -> holder's token. Scripts are loaded on every pub
 * context and reloaded when Redis lost them (NOSCRIPT).
 *
 * Time: the host's clock only paces the work (rc_adapter_tick); every
 * deadline is computed inside Redis, so nodes with skewed clocks behave
 * the same.
 */

/** The node's states, for rc_adapter_node_state() and the node callback. */
enum rc_node_state {
    RC_NODE_OFF = 0,      /* no pub context: nothing held */
    RC_NODE_CLAIMING = 1, /* the lease is asked for */
    RC_NODE_LIVE = 2,     /* the lease is ours, renewed at each beat */
    RC_NODE_REFUSED = 3   /* another live node holds the id */
};

/**
 * Called when the node's state changes, and when a lease call fails while
 * the state stays (err RC_EREDIS: Redis answered with an error, e.g. no
 * scripting). err is RC_ENODEID with RC_NODE_REFUSED, else 0 or
 * RC_EREDIS.
 */
typedef void (*rc_node_cb)(rc_adapter *a, int state, int err, void *user);

/** Room state options. A zeroed struct means the defaults. */
typedef struct rc_state_options {
    const char *key_prefix; /* NULL: "rc:" (may be ""); copied */
    unsigned lease_ms;      /* 0: 15000; 1000 .. 3600000. Renewed every
                               third of it. */
    unsigned verify_ms;     /* 0: 30000. How often the node asks whether a
                               room it has members in was closed while it
                               was cut off (see Admission) */
} rc_state_options;

/**
 * Set the room state options (size: sizeof *opts, as for
 * rc_adapter_counters; fields are only added at the end). Only before the
 * first pub context is handed over. Returns 0, or RC_EINVAL (a or opts
 * NULL, lease_ms out of range), RC_EMISUSE (a pub context was handed over
 * already, or the adapter is being freed), RC_ENOMEM (nothing changed).
 */
ROOMCAST_EXTERN int rc_adapter_set_state_options(rc_adapter *a,
                                                 const rc_state_options *opts,
                                                 size_t size);

/** Set (or with cb NULL, clear) the node callback. A NULL adapter is
 *  ignored. */
ROOMCAST_EXTERN void rc_adapter_set_node_cb(rc_adapter *a, rc_node_cb cb,
                                            void *user);

/** The node's state (RC_NODE_OFF for NULL). */
ROOMCAST_EXTERN int rc_adapter_node_state(const rc_adapter *a);

/**
 * Do the adapter's timed work: renew the lease, ask again for a refused
 * or unanswered one. now_ms is any monotonic clock of the host's in ms
 * (only differences are used). Returns how many ms later it wants to be
 * called again (at least 1); calling it earlier or more often is harmless.
 * The libevent glue (rc_link) calls it by itself. NULL: returns 1000.
 */
ROOMCAST_EXTERN unsigned rc_adapter_tick(rc_adapter *a,
                                         unsigned long long now_ms);

/* ---- Presence --------------------------------------------------------- */

/*
 * Who is in a room, cluster-wide, counted by connections (tabs) per user.
 * A connection given a user (rc_conn_set_user) is present in every
 * presence room it joins, on whichever node; connections without a user
 * are not listed but see everything.
 *
 * Events reach every member of the room on every node as ordinary
 * messages to their sinks (shared frames, no id line):
 * - "rc:presence" {"room":R,"users":[{"user":U,"connections":N
 *   [,"info":I]},...]} to a connection once it joined (after its room's
 *   SUBSCRIBE is confirmed), and again to every member after a reconnect:
 *   everyone present, itself included; then only the changes after it
 *   (no change is lost or applied twice between the two);
 * - "rc:join" {"user":U} when U's first connection anywhere joins;
 * - "rc:leave" {"user":U,"reason":"left"|"lost"} when U's last connection
 *   is gone and the grace ran out without U coming back on any node
 *   ("lost": its node died and another node reaped it).
 * Each happens once cluster-wide, however many nodes race to emit it:
 * every change is one Lua script, which publishes it (with node "" and
 * meta {"ps":N}, the room's presence sequence; a Node reference node
 * forwards it to its clients as an ordinary event).
 *
 * Liveness is per adapter, not per connection: the node's lease (above)
 * also renews its token's liveness; a node that stops renewing is reaped
 * by any other (idempotently), its users leaving with reason "lost" after
 * lease + grace. Grace, sweeping and reaping are driven by
 * rc_adapter_tick; all time is Redis'.
 *
 * While Redis is away, joins and leaves are not sent; when a pub context
 * is back, each presence room is reconciled (this node's connections in
 * Redis are made exactly its local ones, only real differences make
 * events) and every member gets a fresh rc:presence. A node away longer
 * than its lease has been reaped: its users leave ("lost") and join again
 * when it is back. A room whose state Redis lost (a restart without
 * persistence) is refilled silently, and its members get a fresh
 * rc:presence, not a storm of joins.
 */

/** Presence options (zeroed: defaults). */
typedef struct rc_presence_options {
    unsigned grace_ms; /* 0: 10000. A user's last connection gone this
                          long, with none back on any node: rc:leave */
    unsigned sweep_ms; /* 0: 1000. How often this node looks for leaves
                          due (every node does; one emits each) */
    /* 0: 100. A room with more users than this gets no per-user events:
     * its members get rc:presence {"room":R,"count":N,"users":[]} at
     * most once per sweep while it changes, and joiners the same. */
    unsigned announce_max;
    /* Which rooms carry presence: nonzero for yes. NULL: every room. */
    int (*room_filter)(const char *room, void *user);
    void *filter_user;
    unsigned flags; /* RC_PRESENCE_* */
} rc_presence_options;

/** rc_presence_options.flags: events per connection instead of per user
 *  ("rc:join" {"user":U,"connection":C} for every connection that joins,
 *  "rc:leave" {"user":U,"connection":C,"reason":R} for every one that
 *  leaves, at once: no grace), and rc:presence lists the connections too
 *  ("connections":[{"connection":C,"user":U},...]). Needs Redis: an
 *  adapter without it tells per user. */
#define RC_PRESENCE_PER_CONNECTION 1u

/**
 * Turn presence on (size: sizeof *opts; opts copied). Only before the
 * first pub context is handed over, like rc_adapter_set_state_options:
 * open the adapter without contexts, set this, then hand them over (or
 * rc_link_open).
 * The rooms' keys are under the state key prefix, with the hash tag of
 * their channel's Redis Cluster slot (README lists them). Returns 0,
 * RC_EINVAL (a or opts NULL, grace_ms over one day), RC_EMISUSE.
 */
ROOMCAST_EXTERN int rc_adapter_set_presence(rc_adapter *a,
                                            const rc_presence_options *opts,
                                            size_t size);

/**
 * Give a connection its identity, before it joins a presence room (user
 * copied; info: JSON text of info_len bytes, copied, or NULL). user must
 * be 1 to 256 bytes of UTF-8 without control characters. Returns 0, or
 * RC_EINVAL (NULL conn or user, bad length), RC_ECHAR (a control
 * character), RC_EUTF8, RC_EJSON / RC_EDEPTH (info), RC_EMISUSE (conn
 * is in a presence room already), RC_ENOMEM.
 */
ROOMCAST_EXTERN int rc_conn_set_user(rc_conn *conn, const char *user,
                                     const char *info, size_t info_len);

/** The connection's user, or NULL. */
ROOMCAST_EXTERN const char *rc_conn_user_id(const rc_conn *conn);

/**
 * Leave a room at once: as rc_room_leave, but a user whose last
 * connection this was leaves with no grace (a "Leave" button). Returns
 * as rc_room_leave.
 */
ROOMCAST_EXTERN int rc_room_leave_now(rc_conn *conn, const char *room);

/** One entry of a presence query's answer. Strings valid for the
 *  callback only; a field a query does not fill is NULL (or 0). */
typedef struct rc_presence_entry {
    const char *user;
    const char *room;
    unsigned long long connections; /* 0: in the grace (leaving) */
    const char *info;               /* JSON text, info_len bytes, or NULL */
    size_t info_len;
    const char *conn; /* rc_presence_members only: the connection and */
    const char *node; /* the node it is on */
} rc_presence_entry;

/**
 * A query's answer: err 0 and n entries, or err RC_EMISUSE (no Redis link
 * now, or it went away before the answer), RC_EREDIS, RC_ENOMEM, with
 * n 0. Called exactly once, from the loop (never from inside the query
 * call), unless the adapter is freed first.
 */
typedef void (*rc_presence_cb)(rc_adapter *a, int err,
                               const rc_presence_entry *e, size_t n,
                               void *user);

/**
 * Queries, each one script call and O(n) in what it returns:
 * - rc_presence_users: the users present in room (user, connections,
 *   info; room set), in no particular order;
 * - rc_presence_members: its connections (conn, node, user);
 * - rc_presence_user: the rooms of user (room, connections);
 * - rc_presence_online: everyone present anywhere (user, room,
 *   connections), one entry per user and room.
 * Return 0 (cb will be called), or RC_EINVAL, RC_EMISUSE (presence off,
 * or no pub context now), RC_ENOMEM: then cb is not called.
 */
ROOMCAST_EXTERN int rc_presence_users(rc_adapter *a, const char *room,
                                      rc_presence_cb cb, void *user);
ROOMCAST_EXTERN int rc_presence_members(rc_adapter *a, const char *room,
                                        rc_presence_cb cb, void *user);
ROOMCAST_EXTERN int rc_presence_user(rc_adapter *a, const char *user_id,
                                     rc_presence_cb cb, void *user);
ROOMCAST_EXTERN int rc_presence_online(rc_adapter *a, rc_presence_cb cb,
                                       void *user);

/* ---- Rate limits ---------------------------------------------------- */

/*
 * GCRA (the generic cell rate algorithm): at most burst requests at once,
 * then one per 1/per_second seconds; a refused request is not counted and
 * learns how long to wait. Exact under any concurrency: cluster-wide
 * buckets are one key each in Redis ("<kp>rl:<key>", the state key
 * prefix), checked by one script call against Redis' clock; local ones are
 * an rc_gcra the host keeps (per connection, say), on the host's clock.
 */
typedef struct rc_rate {
    double per_second; /* > 0 */
    unsigned burst;    /* 0: 1 */
} rc_rate;

/** A local bucket; zeroed: full. */
typedef struct rc_gcra {
    unsigned long long tat_us;
} rc_gcra;

/**
 * Take one request from a local bucket at the host's time now_us (any
 * monotonic clock in microseconds). Returns 1 (allowed), 0 (refused:
 * *retry_ms, if not NULL, gets the wait in ms, at least 1) or RC_EINVAL
 * (NULL g or r, per_second not above 0). Pure: no adapter, any thread.
 */
ROOMCAST_EXTERN int rc_gcra_take(rc_gcra *g, const rc_rate *r,
                                 unsigned long long now_us,
                                 unsigned long long *retry_ms);

/** A cluster-wide check's answer: rv 1 (allowed) or RC_ELIMITED (refused:
 *  retry_ms, at least 1, until it would be), or an error (RC_EREDIS,
 *  RC_EMISUSE: the link went away first; the request is not counted). */
typedef void (*rc_rate_cb)(rc_adapter *a, int rv, unsigned long long retry_ms,
                           void *user);

/**
 * Take one request from the cluster-wide bucket named key (copied) with
 * rate r. Returns 0: Redis is asked, and cb is called exactly once from
 * the loop (unless the adapter is freed first). While there is no pub
 * context (Redis away, or an adapter without Redis), it decides at once on
 * this node's own bucket for key, at the same rate (a local share, on the
 * tick's clock: rc_adapter_tick), and returns 1 or RC_ELIMITED (*retry_ms
 * set when not NULL); cb is not called then. Errors: RC_EINVAL (NULL a,
 * key, r or cb; a bad rate), RC_ENOMEM.
 */
ROOMCAST_EXTERN int rc_rate_take(rc_adapter *a, const char *key,
                                 const rc_rate *r, rc_rate_cb cb, void *user,
                                 unsigned long long *retry_ms);

/**
 * The bucket key of a client address: "ip4:A.B.C.D", or for IPv6 its /64
 * ("ip6:" and the first 8 bytes in hex), so that one host's addresses
 * share a bucket. Returns 0, RC_EINVAL (not an IP address) or
 * RC_ENOBUFS (size under 40). Pure, any thread.
 */
ROOMCAST_EXTERN int rc_rate_addr_key(const char *addr, char *out, size_t size);

/* ---- Admission: capped rooms, sessions by code, close ---------------- */

/*
 * A capped room admits at most cap users (not connections) cluster-wide.
 * Every admission, eviction and close is one Lua script on the room's
 * keys, so they are linearisable: N concurrent admits on any nodes seat
 * exactly the free seats, and nothing is admitted after a close.
 *
 * A seat is held by its user while the user has a connection in the room
 * (presence on), then through the presence grace; a user admitted but not
 * connected holds it for the room's hold_ms. With presence on, a capped
 * room is members only: a connection whose user holds no seat (or any
 * connection, once the room is closed) is taken out of the room by the
 * library and told to the end callback.
 *
 * Closing a room ends it everywhere: each node's members get
 * "rc:closed" {"reason":R} (an ordinary v1 envelope, node "", so a Node
 * reference node forwards it), are taken out of the room and told to
 * the end callback (RC_ECLOSED). The room stays closed for ttl_s (a
 * tombstone): admits, joins and its code are refused meanwhile. A node cut
 * off from Redis during the close learns it when it is back (its presence
 * reconciliation is refused) and, at the latest, at its next verification
 * (rc_state_options.verify_ms).
 *
 * Evicting a user frees its seat at once and ends its connections in the
 * room on every node (told RC_ENOTMEMBER); the others get rc:leave
 * {"user":U,"reason":"left"}.
 *
 * Sessions: rc_room_create with room NULL picks a fresh code, uniform over
 * the alphabet's codes that are neither live nor tombstoned; collisions
 * are settled in Redis (a code is reserved by one script), never by
 * check-then-set.
 *
 * Keys (under the key prefix): "<kp>{T}:pm" hash (state, cap, hold, the
 * close's reason), "<kp>{T}:pa" sorted set user -> seat deadline (inf
 * while connected), both expiring ttl_s after the last admission (and
 * ttl_s after the close: the tombstone); "<kp>{codes}" sorted set code ->
 * deadline; "<kp>{closed}" sorted set room -> tombstone deadline, with
 * "<kp>{closed}:n", the number of closes (what nodes verify against).
 *
 * Redis down (no pub context): admission fails closed with RC_EUNAVAIL
 * (the host answers 503); rooms without a cap keep working locally.
 */

/** How a room is made (rc_room_create). Zeroed: defaults. */
typedef struct rc_room_spec {
    unsigned cap;     /* users at once; 0: no cap */
    unsigned ttl_s;   /* 0: 86400. An open room this long without an
                         admission, and a closed room's tombstone, expire */
    unsigned hold_ms; /* 0: 15000. An admitted user's seat while it has
                         no connection yet */
    /* For room NULL (a session): the room is code_prefix + a code of
     * code_len symbols of alphabet. */
    const char *alphabet;    /* NULL: "0123456789ABCDEFGHJKMNPQRSTVWXYZ" */
    unsigned code_len;       /* 0: 6; at most 32 */
    const char *code_prefix; /* NULL: "session:" */
} rc_room_spec;

/**
 * An admission call's answer: rv 0 (done), RC_EFULL, RC_ECLOSED,
 * RC_ENOROOM, RC_ENOTMEMBER, RC_ENOCODE, RC_EEXIST (rc_room_create: the
 * room exists), RC_ELIMITED (rc_room_send: retry_ms until it would pass),
 * or RC_EUNAVAIL (the link went away first: nothing is known), RC_EREDIS.
 * room is the room's name (a created session's, too), valid for the call.
 * Called exactly once, from the loop, unless the adapter is freed first.
 */
typedef void (*rc_admit_cb)(rc_adapter *a, int rv, const char *room,
                            unsigned long long retry_ms, void *user);

/**
 * Told for each local connection the library took out of room (already
 * left when this runs): reason RC_ECLOSED (the room was closed) or
 * RC_ENOTMEMBER (its user was evicted, or holds no seat). The host
 * usually ends the stream; it may remove conn here.
 */
typedef void (*rc_end_cb)(rc_conn *conn, const char *room, int reason,
                          void *user);

/** Set (or with cb NULL, clear) the end callback. NULL a is ignored. */
ROOMCAST_EXTERN void rc_adapter_set_end_cb(rc_adapter *a, rc_end_cb cb,
                                           void *user);

/**
 * Create a room with spec (NULL: defaults) and seat user in it (NULL:
 * nobody). room NULL: a session under a fresh code. Each string is
 * copied. Returns 0 (cb will be called), RC_EINVAL (NULL a or cb, a bad
 * name, user, alphabet or length), RC_EUNAVAIL (no pub context now),
 * RC_ENOMEM, RC_ERANDOM; then cb is not called.
 */
ROOMCAST_EXTERN int rc_room_create(rc_adapter *a, const char *room,
                                   const rc_room_spec *spec, const char *user,
                                   rc_admit_cb cb, void *cb_user);

/** rc_room_admit flags: only tell whether user holds a seat (renewing an
 *  admitted seat's hold), never take one: RC_ENOTMEMBER if not. */
#define RC_ADMIT_MEMBER 1u

/**
 * Seat user in room: 0 if seated now or already (a second tab takes no
 * seat), RC_EFULL, RC_ECLOSED, RC_ENOROOM (never created, or expired).
 * A room without a cap admits anyone it knows. Returns as rc_room_create.
 */
ROOMCAST_EXTERN int rc_room_admit(rc_adapter *a, const char *room,
                                  const char *user, unsigned flags,
                                  rc_admit_cb cb, void *cb_user);

/** Free user's seat at once and end its connections in the room on every
 *  node: 0, RC_ENOTMEMBER (held none), RC_ECLOSED, RC_ENOROOM. Returns as
 *  rc_room_create. */
ROOMCAST_EXTERN int rc_room_evict(rc_adapter *a, const char *room,
                                  const char *user, rc_admit_cb cb,
                                  void *cb_user);

/**
 * Close room for everyone (see above); reason: JSON text of the reason
 * (NULL: "closed"), copied. cb: 0, RC_ECLOSED (closed already),
 * RC_ENOROOM. With no pub context, this node's members are ended at once
 * and RC_EUNAVAIL is returned: the host tries again once Redis is back.
 * Otherwise returns as rc_room_create.
 */
ROOMCAST_EXTERN int rc_room_close(rc_adapter *a, const char *room,
                                  const char *reason, rc_admit_cb cb,
                                  void *cb_user);

/** What rc_room_send checks, in one script call with the publish. */
typedef struct rc_send_guard {
    const char *member;   /* non-NULL: RC_ENOTMEMBER unless seated */
    const char *rate_key; /* non-NULL: a cluster-wide bucket (as
                             rc_rate_take), RC_ELIMITED when over */
    const rc_rate *rate;
} rc_send_guard;

/**
 * Broadcast msg to room as rc_broadcast_to_room does, after checks made
 * in Redis in the same round trip as the publish: the room is not closed
 * (RC_ECLOSED; a room never admitted to passes), guard's member holds a
 * seat, guard's rate bucket has room. The envelope is published by the
 * script when every check passes; local members get the message when the
 * answer comes, before cb (rv: the local sinks that accepted, >= 0, or an
 * error as rc_admit_cb). Returns 0 (cb will be called), RC_EINVAL,
 * rc_message_check's errors, RC_ETOOBIG, RC_EUNAVAIL, RC_ENOMEM.
 */
ROOMCAST_EXTERN int rc_room_send(rc_adapter *a, const char *room,
                                 const rc_message *msg,
                                 const rc_send_guard *guard, rc_admit_cb cb,
                                 void *cb_user);

/* ---- History and resume ---------------------------------------------- */

/*
 * Opt-in per room (the filter): a bounded history, and ids "E-S" given
 * by Redis with the publish itself. One script appends the message to the
 * room's history, takes its id and publishes it, so the order of ids is
 * the order of delivery on every node. S grows by one per message within
 * E; E (Redis' clock in ms when the room's history began) changes, and
 * only grows, when the history was lost (Redis restarted empty, the
 * history expired) or fenced (below).
 *
 * In a history room a node delivers its own messages as it gets them back
 * from Redis, in id order with the others' (ordering beats local-first:
 * a local member gets its own message a round trip later), and a missed
 * id on the sub link (a blip, a resubscribe) is first read back from the
 * history; only what cannot be read back gets the room's members
 * "rc:reset".
 *
 * Resume: rc_conn_resume joins a room after the client's last id. The
 * member gets every message after it, in order, then the live ones, with
 * no gap and no duplicate; or, where that cannot be promised, one frame
 * "id: <the room's latest E-S>", "event: rc:reset", data {"reason":R}
 * (R: "epoch": an unknown or lost epoch; "trimmed": older than the
 * history holds; "toomany": more than replay_max; "unparsable"; "ahead":
 * after the room's latest; "unavailable": no Redis now), then the live
 * ones. Its id: line moves the client's cursor, so the next reconnect
 * resumes from there.
 *
 * Rollback fencing: a node that sees a room's sequence go back (a resume
 * ahead of the room, a publish answer or a live message at or below what
 * it has seen in that epoch: Redis restored from an older snapshot, a
 * lagging replica promoted) starts a new epoch, and after each new pub
 * context it fences every history room it has members in, so that no id
 * is handed out twice for different messages.
 *
 * Redis down: a broadcast into a history room is delivered to the local
 * members without an id (nothing is kept), and the room is marked: a
 * resume on this node answers rc:reset ("unavailable") until a publish
 * succeeds again. With RC_HISTORY_STRICT it fails with RC_EUNAVAIL
 * instead.
 *
 * Messages that did not come through the script (a Node reference node
 * publishing into the room) are delivered as they are, with their own id
 * or none: they are not in the history and do not move the sequence.
 *
 * Keys: "<kp>{T}:hm" hash (e, s), expiring 30 days after the last
 * publish; "<kp>{T}:hs" stream of the envelopes (ids S-0, field d),
 * capped near max_len, expiring ttl_s after the last publish.
 */

/** History options (zeroed: defaults). */
typedef struct rc_history_options {
    unsigned max_len;    /* 0: 1000 messages kept per room (at least) */
    unsigned ttl_s;      /* 0: 3600. A room's history after its last
                            publish */
    unsigned replay_max; /* 0: 1000. A resume further behind: rc:reset */
    /* Which rooms keep history: nonzero for yes. NULL: every room. */
    int (*room_filter)(const char *room, void *user);
    void *filter_user;
    unsigned flags; /* RC_HISTORY_* */
} rc_history_options;

/** rc_history_options.flags: while Redis is down, a broadcast into a
 *  history room fails with RC_EUNAVAIL instead of going out without id. */
#define RC_HISTORY_STRICT 1u

/**
 * Turn history on (size: sizeof *opts; opts copied). Only before the
 * first pub context is handed over. Returns 0, RC_EINVAL, RC_EMISUSE.
 * In a history room, rc_broadcast_to_room refuses a message with an id
 * (RC_EINVAL: ids are Redis') and returns 0 when it published (the local
 * members get it back from Redis).
 */
ROOMCAST_EXTERN int rc_adapter_set_history(rc_adapter *a,
                                           const rc_history_options *opts,
                                           size_t size);

/**
 * Join room (as rc_room_join) resuming after last_event_id, the client's
 * Last-Event-ID (NULL or "": a fresh join, no replay). Returns as
 * rc_room_join; a room without history ignores last_event_id.
 */
ROOMCAST_EXTERN int rc_conn_resume(rc_conn *conn, const char *room,
                                   const char *last_event_id);

/** One message of a history read: its id and the message (strings valid
 *  for the callback). */
typedef struct rc_history_entry {
    const char *id;
    rc_message msg;
} rc_history_entry;

/**
 * A history read's answer: err 0 with the n messages after since, in
 * order, and latest, the room's latest id ("" if it has none); or
 * reset non-NULL (a reason as for rc:reset) and n 0; or err RC_EUNAVAIL,
 * RC_EREDIS. Called once, from the loop, unless the adapter is freed.
 */
typedef void (*rc_history_cb)(rc_adapter *a, int err, const char *reset,
                              const char *latest, const rc_history_entry *e,
                              size_t n, void *user);

/**
 * Read room's history after since ("E-S"; NULL or "": from the oldest
 * kept) up to limit messages (0: replay_max), for clients that poll.
 * Returns 0 (cb will be called), RC_EINVAL (history off, a bad room),
 * RC_EUNAVAIL (no pub context now), RC_ENOMEM.
 */
ROOMCAST_EXTERN int rc_history_read(rc_adapter *a, const char *room,
                                    const char *since, unsigned limit,
                                    rc_history_cb cb, void *user);

#ifdef __cplusplus
}
#endif

#endif /* ROOMCAST_H */
