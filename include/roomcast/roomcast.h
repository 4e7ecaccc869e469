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
    X(EEXIST, -16, "connection id already in use")

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

#ifdef __cplusplus
}
#endif

#endif /* ROOMCAST_H */
