/*
 * bench_cluster_out.c: bench_cluster's view of the servers (Redis' CPU,
 * the machine's, which server owns which room, what the links read from
 * each), the latency histogram and the JSON report (bench_cluster.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_cluster.h"
#include "roomcast/transport.h"

#define FINE 10000   /* 10 us buckets: 0 .. 100 ms */
#define COARSE 60000 /* 1 ms buckets: 100 ms .. 60.1 s */

static unsigned long hist[FINE + COARSE + 1];
static long hist_n;
static double hist_max_us;
static redisContext *ctl[MAX_SERVERS];
static int rooms_on[MAX_SERVERS]; /* rooms whose slot each port owns */

/* ---- the latency histogram ---- */

void bc_hist_reset(void)
{
    memset(hist, 0, sizeof hist);
    hist_n = 0;
    hist_max_us = 0;
}

void bc_hist_add(double us)
{
    long i =
        us < 100000 ? (long)(us / 10) : FINE + (long)((us - 100000) / 1000);

    if (i < 0)
        i = 0;
    if (i > FINE + COARSE)
        i = FINE + COARSE;
    hist[i]++;
    hist_n++;
    if (us > hist_max_us)
        hist_max_us = us;
}

/* The upper bound of the bucket holding the q-quantile, in ms. */
double bc_hist_q(double q)
{
    unsigned long want = (unsigned long)(q * (double)hist_n), sum = 0;
    long i;

    if (hist_n == 0)
        return 0;
    for (i = 0; i <= FINE + COARSE; i++)
        if ((sum += hist[i]) > want || sum == (unsigned long)hist_n)
            break;
    return i < FINE ? (i + 1) * 0.01 : 100 + (i - FINE + 1) * 1.0;
}

double bc_hist_max_ms(void)
{
    return hist_max_us / 1e3;
}

/* ---- the servers ---- */

void bc_servers_open(void)
{
    int i;

    for (i = 0; i < opt.nports; i++)
        if ((ctl[i] = redisConnect("127.0.0.1", (int)opt.port[i])) == NULL ||
            ctl[i]->err)
            bu_die("cannot connect to 127.0.0.1:%ld", opt.port[i]);
}

void bc_servers_close(void)
{
    int i;

    for (i = 0; i < opt.nports; i++)
        redisFree(ctl[i]);
}

double bc_redis_cpu(double *each)
{
    double sum = 0;
    int i;

    for (i = 0; i < opt.nports; i++)
        sum += each[i] = bu_redis_cpu_ms(ctl[i]);
    return sum;
}

/* Busy and all jiffies of the machine's CPUs (/proc/stat) into v[0..1]. */
void bc_machine_cpu(double *v)
{
    unsigned long long t[8];
    FILE *f = fopen("/proc/stat", "r");
    int i;

    v[0] = v[1] = 0;
    if (f != NULL &&
        fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &t[0], &t[1],
               &t[2], &t[3], &t[4], &t[5], &t[6], &t[7]) == 8)
        for (i = 0; i < 8; i++) {
            v[1] += (double)t[i];
            v[0] += i == 3 || i == 4 ? 0 : (double)t[i]; /* idle, iowait */
        }
    if (f != NULL)
        fclose(f);
}

/* The port of --ports (its index) that owns slot, from CLUSTER SLOTS r;
 * 0 for one Redis. */
static int owner(const redisReply *r, int slot)
{
    size_t i;
    int j;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return 0;
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            slot < e->element[0]->integer || slot > e->element[1]->integer ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2)
            continue;
        for (j = 0; j < opt.nports; j++)
            if (opt.port[j] == e->element[2]->element[1]->integer)
                return j;
    }
    return 0;
}

void bc_map_rooms(void)
{
    redisReply *r = redisCommand(ctl[0], "CLUSTER SLOTS");
    char chan[64];
    int i, n;

    for (i = 0; i < opt.rooms; i++) {
        n = snprintf(chan, sizeof chan, "%sr%d", RC_DEFAULT_PREFIX, i);
        rooms_on[owner(r, rc_keyslot(chan, (size_t)n))]++;
    }
    freeReplyObject(r);
}

unsigned long bc_link_failures(void)
{
    unsigned long n = 0;
    int s;

    for (s = 0; s < opt.subs; s++)
        n += rc_link_failures(sublinks[s]);
    return n;
}

/* ---- the report ---- */

/* Messages the subscriber links read from the server at port (counted by
 * the glue's own connections; 0 for redis:// on hiredis). */
static unsigned long long sub_messages(long port)
{
    rc_link_shard sh[MAX_SERVERS];
    unsigned long long n = 0;
    char want[32];
    size_t i, k;
    int s;

    snprintf(want, sizeof want, "127.0.0.1:%ld", port);
    for (s = 0; s < opt.subs; s++) {
        k = rc_link_shards(sublinks[s], sh, MAX_SERVERS);
        for (i = 0; i < k && i < MAX_SERVERS; i++)
            if (strcmp(sh[i].addr, want) == 0)
                n += sh[i].messages;
    }
    return n;
}

static void print_step(const bc_step *st, int first)
{
    int i;

    printf("%s{\"rate\":%ld,\"ms\":%.0f,\"sent\":%ld,\"pub_per_s\":%.0f,"
           "\"expected\":%ld,\"delivered\":%ld,\"late\":%ld,"
           "\"deliveries_per_s\":%.0f,\"misses\":%ld,\"dups\":%ld,"
           "\"send_errors\":%ld,\"pub_errors\":%ld,\"pub_behind_max\":%ld,"
           "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,"
           "\"cpu_ms\":%.0f,\"cpu_pct\":%.0f,\"pub_cpu_ms\":%.0f,"
           "\"pub_cpu_pct\":%.0f,\"machine_busy_pct\":%.0f,\"redis_cpu_ms\":[",
           first ? "" : ",", st->rate, st->ms, st->sent,
           st->sent / (opt.step_ms / 1e3), st->expected, st->delivered,
           st->late, st->delivered / (st->ms / 1e3), st->misses, st->dups,
           st->send_errors, st->pub_errors, st->behind_max, st->p50, st->p99,
           st->max, st->cpu_ms, 100 * st->cpu_ms / st->ms, st->pub_cpu_ms,
           100 * st->pub_cpu_ms / st->ms, st->machine_pct);
    for (i = 0; i < opt.nports; i++)
        printf("%s%.0f", i ? "," : "", st->redis_ms[i]);
    printf("],\"redis_cpu_ms_total\":%.0f,\"redis_cpu_ms_per_1k\":%.3f,"
           "\"redis_net_cpu_ms_per_1k\":%.3f,\"ok\":%s,\"why\":\"%s\"}",
           st->redis_total,
           st->sent ? st->redis_total * 1e3 / (double)st->sent : 0,
           st->sent ? (st->redis_total - idle_ms_per_s * st->ms / 1e3) * 1e3 /
                          (double)st->sent
                    : 0,
           st->why ? "false" : "true", st->why ? st->why : "");
}

void bc_print_json(int last, unsigned long failures)
{
    const char *engine = getenv("RC_LINK_ENGINE");
    long within = steps[0].misses, dups = steps[0].dups, bad = 0, i;
    int k, best = 0;

    for (k = 1; k <= last; k++) {
        dups += steps[k].dups;
        if (steps[k].why == NULL)
            best = k, within += steps[k].misses;
    }
    for (i = 0; i < nmembers; i++)
        bad += members[i].bad;
    printf("{\"mode\":\"%s\",\"url\":\"%s\",\"engine\":\"%s\",\"subs\":%d,"
           "\"rooms\":%d,\"members\":%d,\"size\":%d,\"step_ms\":%d,"
           "\"limit_ms\":%d,\"redis_idle_cpu_ms_per_s\":%.1f,"
           "\"servers\":[",
           opt.mode, opt.url, engine ? engine : "", opt.subs, opt.rooms,
           opt.members, opt.size, opt.step_ms, opt.limit_ms, idle_ms_per_s);
    for (k = 0; k < opt.nports; k++)
        printf("%s{\"port\":%ld,\"rooms\":%d,\"sub_messages\":%llu}",
               k ? "," : "", opt.port[k], rooms_on[k],
               sub_messages(opt.port[k]));
    printf("],\"steps\":[");
    for (k = 1; k <= last; k++)
        print_step(&steps[k], k == 1);
    printf("],\"best\":%d,\"max_rate\":%ld,\"misses_within_limit\":%ld,"
           "\"dups\":%ld,\"bad\":%ld,\"link_failures\":%lu}\n",
           best - 1, best ? steps[best].rate : 0, within, dups, bad, failures);
}
