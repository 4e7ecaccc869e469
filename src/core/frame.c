/*
 * Frames: one SSE frame per message per node, formatted once and shared,
 * refcounted, by every local recipient. A frame carries a copy of the
 * allocator, so that a host may keep one past its adapter's end.
 */
#include "internal.h"

rc_frame *rc__frame_new(const rc__alloc *mem, const rc_message *msg)
{
    size_t size = 0;
    rc_frame *f;

    if (rc_sse_format(msg, NULL, 0, &size) != RC_ENOBUFS)
        return NULL;
    f = rc__malloc(mem, sizeof *f + size);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->mem = *mem;
    rc_sse_format(msg, f->data, size, &f->size);
    return f;
}

const char *rc_frame_data(const rc_frame *frame)
{
    return frame->data;
}

size_t rc_frame_size(const rc_frame *frame)
{
    return frame->size;
}

rc_frame *rc_frame_ref(rc_frame *frame)
{
    frame->refs++;
    return frame;
}

void rc_frame_unref(rc_frame *frame)
{
    rc__alloc mem;

    if (frame == NULL || --frame->refs > 0)
        return;
    mem = frame->mem;
    rc__free(&mem, frame);
}
