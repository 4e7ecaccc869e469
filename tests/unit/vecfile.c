/* Reader for the .vec test-vector format; see vecfile.h. */
#include "vecfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VEC_MAX_KEY 64

static void set_error(vec_file *vf, const char *path, size_t offset,
                      const char *record, const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (record)
        snprintf(vf->error, sizeof vf->error,
                 "%s: byte %zu (in record \"%.80s\"): %s", path, offset, record,
                 msg);
    else
        snprintf(vf->error, sizeof vf->error, "%s: byte %zu: %s", path, offset,
                 msg);
}

static int read_all(vec_file *vf, const char *path)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 1 << 16, used = 0;
    char *buf;

    if (!fp) {
        set_error(vf, path, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    buf = malloc(cap);
    for (;;) {
        size_t got;
        if (!buf) {
            fclose(fp);
            set_error(vf, path, used, NULL, "out of memory");
            return -1;
        }
        if (used + 1 >= cap) {
            char *nb = cap > ((size_t)-1) / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap *= 2;
        }
        got = fread(buf + used, 1, cap - used - 1, fp);
        used += got;
        if (got == 0) {
            if (ferror(fp)) {
                free(buf);
                fclose(fp);
                set_error(vf, path, used, NULL, "read error");
                return -1;
            }
            break;
        }
    }
    fclose(fp);
    buf[used] = '\0';
    vf->data = buf;
    vf->size = used;
    return 0;
}

static int grow(void **arr, size_t *cap, size_t count, size_t elem)
{
    size_t ncap;
    void *n;

    if (count < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    if (ncap > ((size_t)-1) / elem)
        return -1;
    n = realloc(*arr, ncap * elem);
    if (!n)
        return -1;
    *arr = n;
    *cap = ncap;
    return 0;
}

void vec_free(vec_file *vf)
{
    size_t i;

    if (!vf)
        return;
    for (i = 0; i < vf->nrecords; i++)
        free(vf->records[i].fields);
    free(vf->records);
    free(vf->data);
    vf->data = NULL;
    vf->size = 0;
    vf->records = NULL;
    vf->nrecords = 0;
}

int vec_load(vec_file *vf, const char *path)
{
    size_t p = 0, rec_cap = 0, field_cap = 0;
    vec_record cur;
    int in_record = 0;
    char *d;
    size_t size;

    memset(vf, 0, sizeof *vf);
    memset(&cur, 0, sizeof cur);
    if (read_all(vf, path) != 0)
        return -1;
    d = vf->data;
    size = vf->size;

    while (p < size) {
        size_t start = p, key_end, len = 0, ndigits = 0;
        const char *recname = in_record ? cur.name : NULL;
        const char *key;
        size_t i;

        if (d[p] == '\n') { /* blank line */
            p++;
            continue;
        }
        if (d[p] == '#') { /* comment, to the end of the line */
            while (p < size && d[p] != '\n')
                p++;
            if (p < size)
                p++;
            continue;
        }
        /* "<key> <len>\n" */
        while (p < size && p - start <= VEC_MAX_KEY &&
               ((d[p] >= 'a' && d[p] <= 'z') || (d[p] >= '0' && d[p] <= '9') ||
                d[p] == '_'))
            p++;
        key_end = p;
        if (key_end == start || key_end - start > VEC_MAX_KEY) {
            set_error(vf, path, start, recname,
                      "expected a field key ([a-z0-9_]{1,%d})", VEC_MAX_KEY);
            goto fail;
        }
        if (p >= size || d[p] != ' ') {
            set_error(vf, path, p, recname,
                      "expected a space after the field key");
            goto fail;
        }
        p++;
        while (p < size && d[p] >= '0' && d[p] <= '9') {
            size_t digit = (size_t)(d[p] - '0');
            if (len > (((size_t)-1) - digit) / 10) {
                set_error(vf, path, p, recname, "field length overflows");
                goto fail;
            }
            len = len * 10 + digit;
            ndigits++;
            p++;
        }
        if (ndigits == 0 || p >= size || d[p] != '\n') {
            set_error(vf, path, p, recname,
                      "expected a decimal length then a newline");
            goto fail;
        }
        p++;
        if (len > size - p || size - p - len < 1) {
            set_error(vf, path, start, recname,
                      "field of %zu bytes runs past the end of the file "
                      "(%zu bytes left)",
                      len, size - p);
            goto fail;
        }
        if (d[p + len] != '\n') {
            set_error(vf, path, p + len, recname,
                      "field value is not followed by a newline (length "
                      "wrong?)");
            goto fail;
        }
        d[key_end] = '\0';
        d[p + len] = '\0';
        key = d + start;

        if (!in_record) {
            if (strcmp(key, "name") != 0) {
                set_error(vf, path, start, NULL,
                          "field \"%s\" outside a record (a record starts "
                          "with \"name\")",
                          key);
                goto fail;
            }
            if (len == 0 || strlen(d + p) != len) {
                set_error(vf, path, start, NULL,
                          "record name is empty or holds a NUL");
                goto fail;
            }
            memset(&cur, 0, sizeof cur);
            field_cap = 0;
            cur.name = d + p;
            cur.offset = start;
            in_record = 1;
        } else if (strcmp(key, "name") == 0) {
            set_error(vf, path, start, recname,
                      "record has no \"end\" before the next \"name\"");
            goto fail;
        } else if (strcmp(key, "end") == 0) {
            if (len != 0) {
                set_error(vf, path, start, recname,
                          "\"end\" must have length 0");
                goto fail;
            }
            if (grow((void **)&vf->records, &rec_cap, vf->nrecords,
                     sizeof *vf->records) != 0) {
                set_error(vf, path, start, recname, "out of memory");
                goto fail;
            }
            vf->records[vf->nrecords++] = cur;
            memset(&cur, 0, sizeof cur);
            in_record = 0;
            p += len + 1;
            continue;
        } else {
            for (i = 0; i < cur.nfields; i++) {
                if (strcmp(cur.fields[i].key, key) == 0) {
                    set_error(vf, path, start, recname,
                              "duplicate field \"%s\"", key);
                    goto fail;
                }
            }
        }
        if (grow((void **)&cur.fields, &field_cap, cur.nfields,
                 sizeof *cur.fields) != 0) {
            set_error(vf, path, start, recname, "out of memory");
            goto fail;
        }
        cur.fields[cur.nfields].key = key;
        cur.fields[cur.nfields].value = d + p;
        cur.fields[cur.nfields].len = len;
        cur.nfields++;
        p += len + 1;
    }
    if (in_record) {
        set_error(vf, path, size, cur.name,
                  "file ends inside a record (no \"end\")");
        goto fail;
    }
    return 0;

fail:
    free(cur.fields);
    {
        char saved[sizeof vf->error];
        memcpy(saved, vf->error, sizeof saved);
        vec_free(vf);
        memcpy(vf->error, saved, sizeof saved);
    }
    return -1;
}

const vec_field *vec_get(const vec_record *rec, const char *key)
{
    size_t i;

    for (i = 0; i < rec->nfields; i++) {
        if (strcmp(rec->fields[i].key, key) == 0)
            return &rec->fields[i];
    }
    return NULL;
}

int vec_get_ull(const vec_field *f, unsigned long long max,
                unsigned long long *out)
{
    unsigned long long v = 0;
    size_t i;

    if (!f || f->len == 0 || f->len > 20)
        return -1;
    for (i = 0; i < f->len; i++) {
        unsigned digit;
        if (f->value[i] < '0' || f->value[i] > '9')
            return -1;
        digit = (unsigned)(f->value[i] - '0');
        if (digit > max || v > (max - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}
