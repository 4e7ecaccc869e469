/*
 * An independent check of RFC 8259's JSON grammar, for the fuzz targets
 * only: an oracle for what roomcast's decoder and rc_message_check() must
 * accept or refuse. It shares no code with src/. Syntax only: UTF-8
 * validity is sse_utf8_valid()'s job (sse_parse.h).
 */
#ifndef RC_FUZZ_JSON_CHECK_H
#define RC_FUZZ_JSON_CHECK_H

#include <stddef.h>

/* Nesting this deep is not judged (the check recurses). */
#define JSON_CHECK_GIVE_UP 4096u

/*
 * 1 if s[0..n) is exactly one JSON text (ws value ws), 0 if not, -1 if it
 * nests deeper than JSON_CHECK_GIVE_UP before an answer. On 1, *depth gets
 * its deepest nesting of arrays and objects ("[]" is 1, "1" is 0).
 */
int json_text(const void *s, size_t n, unsigned *depth);

#endif /* RC_FUZZ_JSON_CHECK_H */
