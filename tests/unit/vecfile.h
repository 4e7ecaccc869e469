/*
 * Reader for the .vec test-vector format (see tests/vectors/README.md).
 *
 * A field is "<key> <decimal byte length>\n<exactly that many bytes>\n".
 * A record starts with field "name" and ends with field "end" (length 0).
 * Lines starting with '#' and blank lines may appear between fields.
 *
 * The whole file is read into memory; every value is NUL-terminated in
 * place (the '\n' after it is overwritten), so values can also be used as
 * C strings when they hold no NUL. Any format error makes vec_load() fail
 * with a message naming the byte offset and the record.
 */
#ifndef VECFILE_H
#define VECFILE_H

#include <stddef.h>

typedef struct vec_field {
    const char *key;   /* NUL-terminated */
    const char *value; /* len bytes, followed by a NUL */
    size_t len;
} vec_field;

typedef struct vec_record {
    const char *name; /* the "name" field's value */
    size_t offset;    /* byte offset of the record in the file */
    vec_field *fields;
    size_t nfields; /* "name" included, "end" not */
} vec_record;

typedef struct vec_file {
    char *data;
    size_t size;
    vec_record *records;
    size_t nrecords;
    char error[512]; /* set when vec_load() fails */
} vec_file;

/** Load and parse path. Returns 0, or -1 with vf->error set (vf is then
 *  empty and needs no vec_free, though calling it is harmless). */
int vec_load(vec_file *vf, const char *path);

/** Free what vec_load() allocated; vf is left empty. */
void vec_free(vec_file *vf);

/** The field called key in rec, or NULL. */
const vec_field *vec_get(const vec_record *rec, const char *key);

/** Parse a field holding decimal digits (no sign, no spaces) into *out.
 *  Returns 0, or -1 if it is empty, not all digits, or over max. */
int vec_get_ull(const vec_field *f, unsigned long long max,
                unsigned long long *out);

#endif /* VECFILE_H */
