/*
 * Presence events on their way to members: told apart from other
 * messages (node "" and meta {"ps":N}), kept for the members of a room
 * awaiting their snapshot, and ordered against each member's snapshot.
 */
#include "presence.h"

void rc__kept_free(rc__proom *p)
{
    pevent *e;

    while ((e = p->first) != NULL) {
        rc__alloc mem = e->frame->mem; /* the frame's copy of ours */

        p->first = e->next;
        rc_frame_unref(e->frame);
        rc__free(&mem, e);
    }
    p->last = NULL;
    p->kept = 0;
}

/* meta {"ps":N} as our scripts write it: N, or 0. */
static long long meta_seq(const char *meta, size_t len)
{
    long long v = 0;
    size_t i = 6;

    if (meta == NULL || len < 8 || memcmp(meta, "{\"ps\":", 6) != 0)
        return 0;
    for (; i < len && meta[i] >= '0' && meta[i] <= '9' && v < 1000000000000000;
         i++)
        v = v * 10 + (meta[i] - '0');
    return i + 1 == len && meta[i] == '}' ? v : 0;
}

static void keep(rc_adapter *a, rc__proom *p, long long seq,
                 const rc_message *msg)
{
    size_t el = strlen(msg->event);
    pevent *e = rc__malloc(&a->mem, sizeof *e + el + 1 + msg->data_len);

    if (e == NULL || (e->frame = rc__frame_new(&a->mem, msg)) == NULL) {
        rc__free(&a->mem, e);
        p->dropped = seq; /* the waiting members will ask again */
        return;
    }
    e->next = NULL;
    e->seq = seq;
    e->msg = *msg;
    memcpy(e->bytes, msg->event, el + 1);
    memcpy(e->bytes + el + 1, msg->data, msg->data_len);
    e->msg.event = e->bytes;
    e->msg.data = e->bytes + el + 1;
    e->msg.id = NULL;
    if (p->last != NULL)
        p->last->next = e;
    else
        p->first = e;
    p->last = e;
    if (++p->kept > MAX_KEPT && p->walking == 0) {
        pevent *old = p->first;

        p->first = old->next;
        p->dropped = old->seq;
        p->kept--;
        rc_frame_unref(old->frame);
        rc__free(&a->mem, old);
    }
}

/* The room's view follows the events after its snapshot: a join puts the
 * user in, a leave takes it out; a room-wide rc:presence (a refresh, or a
 * large room's count) leaves it unknown until the next snapshot. */
static void view_event(rc_adapter *a, rc__proom *p, const rc_message *msg,
                       long long seq)
{
    char *user;

    p->view_seq = seq;
    if (strcmp(msg->event, "rc:presence") == 0) {
        rc__plocal_clear(a, &p->users);
        return;
    }
    if ((user = rc__data_user(a, msg)) == NULL)
        return;
    if (strcmp(msg->event, "rc:join") == 0)
        rc__plocal_put(a, &p->users, user, strlen(user), 1);
    else if (strcmp(msg->event, "rc:leave") == 0)
        rc__plocal_remove(a, &p->users, user, strlen(user));
    rc__free(&a->mem, user);
}

long long rc__presence_event(rc_adapter *a, rc__aroom *room,
                             const rc_envelope *env)
{
    long long seq;

    if (room->pres == NULL || env->node[0] != '\0' || env->msg.event == NULL ||
        strncmp(env->msg.event, "rc:", 3) != 0 ||
        (seq = meta_seq(env->meta, env->meta_len)) == 0)
        return 0;
    if (!room->pres->local && RC__PER_USER(a) && seq > room->pres->view_seq)
        view_event(a, room->pres, &env->msg, seq);
    if (room->pres->asking > 0) {
        keep(a, room->pres, seq, &env->msg);
        a->c.presence_held++;
    }
    return seq;
}

int rc__presence_wants(const rc__member *m, long long seq)
{
    const pmember *pm = m->ext;

    return pm == NULL || (pm->state == P_SYNCED && seq > pm->snap);
}
