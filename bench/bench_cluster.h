/*
 * bench_cluster.h: what the files of bench_cluster share: bench_cluster.c
 * (the subscriber nodes, the steps), bench_cluster_pub.c (the publisher,
 * a process of its own) and bench_cluster_out.c (the servers' side:
 * Redis' and the machine's CPU, which server owns which room; the latency
 * histogram; the JSON report).
 */
#ifndef BENCH_CLUSTER_H
#define BENCH_CLUSTER_H

#include "benchutil.h"

#define MAX_SUBS 8
#define MAX_SERVERS 8
#define MAX_STEPS 16              /* rates */
#define MAX_TRIES (2 * MAX_STEPS) /* steps run: a failed rate runs again */
#define BC_READY_MS 20000         /* for every node to be up and ready */

/* The options (bench_cluster --help). */
typedef struct bc_options {
    const char *url, *mode;
    int subs, rooms, members, size, step_ms, drain_ms, warmup_ms, limit_ms;
    int idle_ms;
    int nsteps, nports;
    long rate[MAX_STEPS], port[MAX_SERVERS];
} bc_options;

/* One step run (steps[0]: the warm-up). */
typedef struct bc_step {
    long rate, sent, send_errors, pub_errors, expected, delivered, late;
    long behind_max, misses, dups;
    double ms, p50, p99, max, cpu_ms, pub_cpu_ms, machine_pct;
    double redis_ms[MAX_SERVERS], redis_total;
    const char *why; /* NULL: within the limit */
} bc_step;

/* One connection: its room and what it got. */
typedef struct bc_member {
    int room;
    unsigned long long next; /* the room's next sequence number */
    long bad;                /* unreadable data, or another room's */
} bc_member;

extern bc_options opt;
extern bc_step steps[MAX_TRIES + 1];
extern bc_member *members;
extern long nmembers;
extern rc_adapter *subs[MAX_SUBS];
extern rc_link *sublinks[MAX_SUBS];
extern double idle_ms_per_s; /* Redis' CPU with nothing sent, all ports */
extern unsigned long pub_link_failures;

/* The publisher's pipes: a command per step, a report per step. */
typedef struct bc_cmd {
    int k; /* the step; -1: stop */
    long rate, ms;
} bc_cmd;

typedef struct bc_report {
    int k; /* the step; -1: the publisher is ready */
    long sent, send_errors, pub_errors, behind_max;
    unsigned long long sent_total; /* messages sent in the whole run */
    double cpu_ms;
    unsigned long link_failures;
} bc_report;

/* Run the publisher: commands from in, reports to out; exits. */
void bc_publisher(int in, int out);

/* A node "bc-PID-ROLE-I" on --url, its lease an hour long (nothing but
 * the measured calls reaches Redis); bc_node_up: link up, lease held. */
rc_adapter *bc_open_node(struct event_base *base, const char *role, int i,
                         rc_link **link);
int bc_node_up(rc_adapter *a, rc_link *l);

/* CLOCK_MONOTONIC in ns. */
unsigned long long bc_now_ns(void);

/* The latency histogram: 10 us buckets below 100 ms, 1 ms up to 60.1 s. */
void bc_hist_reset(void);
void bc_hist_add(double us);
double bc_hist_q(double q); /* the q-quantile's bucket's upper bound, ms */
double bc_hist_max_ms(void);

/* A control connection to each --ports; bc_map_rooms: which of them owns
 * each room's channel (CLUSTER SLOTS). */
void bc_servers_open(void);
void bc_servers_close(void);
void bc_map_rooms(void);

/* used_cpu_user + used_cpu_sys of each server into each[], summed (ms). */
double bc_redis_cpu(double *each);

/* Busy and all jiffies of the machine's CPUs (/proc/stat) into v[0..1]. */
void bc_machine_cpu(double *v);

/* Link failures of every subscriber node's link, summed. */
unsigned long bc_link_failures(void);

/* The report of steps 1..last on stdout. */
void bc_print_json(int last, unsigned long failures);

#endif
