/* Ids when the system gives no random bytes: RC_ERANDOM, not RC_ENOMEM.
 * Linked with --wrap for syscall, open and open64 (the name glibc's
 * headers may give open), so that random.c's getrandom and /dev/urandom
 * reach the wrappers below, which fail while no_random is set and pass
 * through otherwise. */
#define _GNU_SOURCE /* syscall(), SYS_getrandom, O_TMPFILE */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include <roomcast/roomcast.h>

static int no_random;       /* the wrappers fail while set */
static int getrandom_calls; /* failed for random.c */
static int urandom_opens;   /* failed for random.c */

long __real_syscall(long number, ...);
long __wrap_syscall(long number, ...);
int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __real_open64(const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...);

/* Forward up to six word-sized arguments, as the syscall ABI passes. */
long __wrap_syscall(long number, ...)
{
    long arg[6];
    va_list ap;
    int i;

    va_start(ap, number);
    for (i = 0; i < 6; i++)
        arg[i] = va_arg(ap, long);
    va_end(ap);
#ifdef SYS_getrandom
    if (no_random && number == SYS_getrandom) {
        getrandom_calls++;
        errno = ENOSYS;
        return -1;
    }
#endif
    return __real_syscall(number, arg[0], arg[1], arg[2], arg[3], arg[4],
                          arg[5]);
}

/* Should open(path) fail? */
static int refuse(const char *path)
{
    if (!no_random || strcmp(path, "/dev/urandom") != 0)
        return 0;
    urandom_opens++;
    errno = EACCES;
    return 1;
}

/* The mode argument is there with O_CREAT or O_TMPFILE only. */
static int has_mode(int flags)
{
#ifdef O_TMPFILE
    if ((flags & O_TMPFILE) == O_TMPFILE)
        return 1;
#endif
    return (flags & O_CREAT) != 0;
}

#define MODE(flags, mode)                                                      \
    do {                                                                       \
        va_list ap_;                                                           \
        if (has_mode(flags)) {                                                 \
            va_start(ap_, flags);                                              \
            mode = va_arg(ap_, unsigned);                                      \
            va_end(ap_);                                                       \
        }                                                                      \
    } while (0)

int __wrap_open(const char *path, int flags, ...)
{
    unsigned mode = 0;

    MODE(flags, mode);
    return refuse(path) ? -1 : __real_open(path, flags, mode);
}

int __wrap_open64(const char *path, int flags, ...)
{
    unsigned mode = 0;

    MODE(flags, mode);
    return refuse(path) ? -1 : __real_open64(path, flags, mode);
}

static int sink(rc_conn *conn, rc_frame *frame, const rc_message *msg,
                void *user)
{
    (void)conn;
    (void)frame;
    (void)msg;
    (void)user;
    return 0;
}

static void t_no_random_bytes(void **state)
{
    rc_adapter_options o;
    rc_adapter *a = NULL;
    rc_conn *c = NULL;

    (void)state;
    memset(&o, 0, sizeof o);
    no_random = 1;
    /* A random node id is needed: none can be made. */
    assert_int_equal(rc_adapter_open(&o, NULL, NULL, &a), RC_ERANDOM);
    assert_null(a);
    assert_true(urandom_opens > 0);
    assert_null(rc_adapter_new(NULL, NULL, NULL, NULL));
    /* A node id given: the hash seed falls back, the adapter opens. */
    o.node_id = "n";
    assert_int_equal(rc_adapter_open(&o, NULL, NULL, &a), 0);
    assert_non_null(a);
    assert_string_equal(rc_adapter_node_id(a), "n");
    /* A random connection id is needed: none can be made; a given one
     * needs no randomness. */
    assert_int_equal(rc_conn_add(a, NULL, sink, NULL, &c), RC_ERANDOM);
    assert_null(c);
    assert_int_equal(rc_conn_add(a, "c1", sink, NULL, &c), 0);
    assert_int_equal(rc_room_join(c, "r"), 1);
    /* The system gives bytes again: so do ids. */
    no_random = 0;
    c = NULL;
    assert_int_equal(rc_conn_add(a, NULL, sink, NULL, &c), 0);
    assert_int_equal(strlen(rc_conn_id(c)), 36);
    rc_adapter_free(a);
#ifdef SYS_getrandom
    assert_true(getrandom_calls > 0);
#endif
}

static void t_erandom_text(void **state)
{
    (void)state;
    assert_int_equal(RC_ERANDOM, -18);
    assert_string_equal(rc_strerror(RC_ERANDOM),
                        "no random bytes from the system for an id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_no_random_bytes),
        cmocka_unit_test(t_erandom_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
