// The C reference: what the NATS C client (cnats) does on this machine when called directly, as a
// careful C programmer would, with no envelope decoding or dispatch. One scenario, one repetition;
// prints one JSON result line.
//
//   bench <scenario> --url nats://127.0.0.1:PORT --prefix P --n N [--sample-at K]
//
// Scenarios: publish_sync, publish_pipelined, consume, replay, latency, memory, publish_fanin (100
// threads each awaiting its publishes, N in all), large_messages (N 64 KiB bodies published
// asynchronously, then consumed), cold_start (connect, create the consumer, fetch the first stored
// message and print a line at once: the runner times the process from its start to that line).
// Helpers used by Benchmarks/run (not timed): prepublish (stores N BenchEvent envelopes on
// <prefix>.bench.events.1, creating the stream like MessageStore does), delete (removes the
// <prefix>-bench and <prefix>-dead streams).

#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *url = "nats://127.0.0.1:4222";
static const char *prefix = "bench";
static int n = 1000;
static int sample_at = 50000;
static char subject[256];
static char filter[256];
static char stream_name[256];

static void check(natsStatus s, jsErrCode jerr, const char *what) {
    if (s != NATS_OK) {
        fprintf(stderr, "bench.c: %s: %s (jerr %d) %s\n", what, natsStatus_GetText(s), (int)jerr,
                nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
        exit(1);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long proc_status(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    size_t len = strlen(key);
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, len) == 0 && line[len] == ':') {
            kb = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

// The same ~100-byte envelope the Swift and Python implementations write.
static int envelope(char *buffer, size_t size, const char *type, int id) {
    return snprintf(buffer, size,
                    "{\"type\":\"%s\",\"data\":{\"id\":%d,\"amount\":%d,\"currency\":\"EUR\","
                    "\"note\":\"benchmark payload padding text\"}}",
                    type, id, id % 1000);
}

// Creates <prefix>-bench for <prefix>.bench.> as MessageStore would (file storage, 1 GiB,
// 4 MiB messages, 2-minute duplicate window); an existing stream is fine.
static void ensure_stream(jsCtx *js) {
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *subjects[1] = {filter};
    jsStreamConfig_Init(&cfg);
    cfg.Name = stream_name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.MaxBytes = 1LL << 30;
    cfg.MaxMsgSize = 4 << 20;
    cfg.Duplicates = 120LL * 1000000000LL;
    natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) s = NATS_OK;
    check(s, jerr, "js_AddStream");
    jsStreamInfo_Destroy(si);
}

static void print_result(const char *scenario, int count, double seconds, const char *extra) {
    printf("{\"impl\":\"cnats\",\"n\":%d,\"per_second\":%.3f,\"scenario\":\"%s\",\"seconds\":%.6f%s}\n", count,
           seconds > 0 ? count / seconds : 0.0, scenario, seconds, extra ? extra : "");
}

static void publish_sync(jsCtx *js) {
    char body[256];
    jsErrCode jerr = 0;
    for (int i = 0; i < n; i++) {
        jsPubAck *pa = NULL;
        int len = envelope(body, sizeof body, "BenchEvent", i);
        check(js_Publish(&pa, js, subject, body, len, NULL, &jerr), jerr, "js_Publish");
        jsPubAck_Destroy(pa);
    }
}

static int async_failures = 0;

static void on_async_error(jsCtx *js, jsPubAckErr *pae, void *closure) {
    (void)js;
    (void)pae;
    (void)closure;
    async_failures++;
}

// Waits for every asynchronous publish's acknowledgement; exits if any failed.
static void complete_async(jsCtx *js) {
    check(js_PublishAsyncComplete(js, NULL), 0, "js_PublishAsyncComplete");
    if (async_failures) {
        fprintf(stderr, "bench.c: %d async publishes failed\n", async_failures);
        exit(1);
    }
}

static void publish_pipelined(jsCtx *js) {
    char body[256];
    for (int i = 0; i < n; i++) {
        int len = envelope(body, sizeof body, "BenchEvent", i);
        check(js_PublishAsync(js, subject, body, len, NULL), 0, "js_PublishAsync");
    }
    complete_async(js);
}

// publish_fanin: 100 threads share the connection, each publishing and waiting in turn.
#define FANIN_THREADS 100

struct fanin_arg {
    jsCtx *js;
    int first;
};

static void *fanin_thread(void *arg) {
    struct fanin_arg *a = arg;
    char body[256];
    jsErrCode jerr = 0;
    for (int i = a->first; i < n; i += FANIN_THREADS) {
        jsPubAck *pa = NULL;
        int len = envelope(body, sizeof body, "BenchEvent", i);
        check(js_Publish(&pa, a->js, subject, body, len, NULL, &jerr), jerr, "js_Publish (fanin)");
        jsPubAck_Destroy(pa);
    }
    return NULL;
}

static void publish_fanin(jsCtx *js) {
    pthread_t threads[FANIN_THREADS];
    struct fanin_arg args[FANIN_THREADS];
    for (int t = 0; t < FANIN_THREADS; t++) {
        args[t].js = js;
        args[t].first = t;
        pthread_create(&threads[t], NULL, fanin_thread, &args[t]);
    }
    for (int t = 0; t < FANIN_THREADS; t++) pthread_join(threads[t], NULL);
}

// large_messages: the envelope of a LargeEvent, a 64 KiB string.
#define LARGE_BLOB 65536

static char *large_envelope(int id, int *len) {
    size_t size = LARGE_BLOB + 128;
    char *buffer = malloc(size);
    int head = snprintf(buffer, size, "{\"type\":\"LargeEvent\",\"data\":{\"id\":%d,\"blob\":\"", id);
    memset(buffer + head, 'x', LARGE_BLOB);
    *len = head + LARGE_BLOB + snprintf(buffer + head + LARGE_BLOB, size - head - LARGE_BLOB, "\"}}");
    return buffer;
}

static long consume(jsCtx *js, const char *durable, int count);

static double large_messages(jsCtx *js) {
    char large_subject[256];
    snprintf(large_subject, sizeof large_subject, "%s.bench.large.1", prefix);
    double start = now_seconds();
    for (int i = 0; i < n; i++) {
        int len = 0;
        char *body = large_envelope(i, &len);
        check(js_PublishAsync(js, large_subject, body, len, NULL), 0, "js_PublishAsync (large)");
        free(body);
    }
    complete_async(js);
    consume(js, "bench-worker", n);
    return now_seconds() - start;
}

// cold_start: what a new C consumer does before it holds the first stored message.
static void cold_start(jsCtx *js) {
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    check(js_PullSubscribe(&sub, js, filter, "bench-worker", NULL, NULL, &jerr), jerr, "js_PullSubscribe (cold)");
    for (;;) {
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, sub, 1, 5000, &jerr);
        if (s == NATS_TIMEOUT) continue;
        check(s, jerr, "natsSubscription_Fetch (cold)");
        int got = list.Count > 0;
        for (int i = 0; i < list.Count; i++) natsMsg_Ack(list.Msgs[i], NULL);
        natsMsgList_Destroy(&list);
        if (got) break;
    }
    printf("{\"impl\":\"cnats\",\"n\":1,\"per_second\":0,\"scenario\":\"cold_start\",\"seconds\":0}\n");
    fflush(stdout);
    natsSubscription_Destroy(sub);
}

// Pull consumer, batches of 256 (the Swift worker's batch size), one ack per message.
static long consume(jsCtx *js, const char *durable, int count) {
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    long rss_at_sample = 0;
    int seen = 0;
    check(js_PullSubscribe(&sub, js, filter, durable, NULL, NULL, &jerr), jerr, "js_PullSubscribe");
    while (seen < count) {
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, sub, 256, 5000, &jerr);
        if (s == NATS_TIMEOUT) continue;
        check(s, jerr, "natsSubscription_Fetch");
        for (int i = 0; i < list.Count; i++) {
            if (natsMsg_GetDataLength(list.Msgs[i]) > 0) seen++;
            check(natsMsg_Ack(list.Msgs[i], NULL), 0, "natsMsg_Ack");
            if (seen == sample_at) rss_at_sample = proc_status("VmRSS");
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Destroy(sub);
    return rss_at_sample;
}

// Ephemeral pull consumer with no acknowledgements, deleted at the end.
static void replay(jsCtx *js) {
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    jsSubOptions so;
    int seen = 0;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckNone;
    so.Config.DeliverPolicy = js_DeliverAll;
    check(js_PullSubscribe(&sub, js, subject, NULL, NULL, &so, &jerr), jerr, "js_PullSubscribe (replay)");
    while (seen < n) {
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, sub, 256, 5000, &jerr);
        if (s == NATS_TIMEOUT) continue;
        check(s, jerr, "natsSubscription_Fetch (replay)");
        seen += list.Count;
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

// Latency: a worker thread long-polls with batch 1; the main thread publishes one message at a
// time and waits until the worker has seen it.
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int handled = 0;
static double handled_at = 0;
static volatile int stopping = 0;

static void *latency_worker(void *arg) {
    natsSubscription *sub = arg;
    jsErrCode jerr = 0;
    while (!stopping) {
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, sub, 1, 1000, &jerr);
        if (s == NATS_TIMEOUT) continue;
        if (s != NATS_OK) break;
        for (int i = 0; i < list.Count; i++) {
            double t = now_seconds();
            natsMsg_Ack(list.Msgs[i], NULL);
            pthread_mutex_lock(&mu);
            handled++;
            handled_at = t;
            pthread_cond_signal(&cond);
            pthread_mutex_unlock(&mu);
        }
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

static void publish_and_wait(jsCtx *js, const char *subj, const char *type, int id, double *latency_ms) {
    char body[256];
    jsErrCode jerr = 0;
    jsPubAck *pa = NULL;
    int len = envelope(body, sizeof body, type, id);
    pthread_mutex_lock(&mu);
    int before = handled;
    pthread_mutex_unlock(&mu);
    double sent = now_seconds();
    check(js_Publish(&pa, js, subj, body, len, NULL, &jerr), jerr, "js_Publish (latency)");
    jsPubAck_Destroy(pa);
    pthread_mutex_lock(&mu);
    while (handled == before) pthread_cond_wait(&cond, &mu);
    double at = handled_at;
    pthread_mutex_unlock(&mu);
    if (latency_ms) *latency_ms = (at - sent) * 1000.0;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void latency(jsCtx *js, double *seconds, double *p50, double *p99) {
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    pthread_t thread;
    char warmup[256];
    double *latencies = calloc((size_t)n, sizeof(double));
    snprintf(warmup, sizeof warmup, "%s.bench.warmup.1", prefix);
    check(js_PullSubscribe(&sub, js, filter, "bench-worker", NULL, NULL, &jerr), jerr, "js_PullSubscribe (latency)");
    pthread_create(&thread, NULL, latency_worker, sub);
    publish_and_wait(js, warmup, "Warmup", 0, NULL);
    double start = now_seconds();
    for (int i = 0; i < n; i++) publish_and_wait(js, subject, "BenchEvent", i, &latencies[i]);
    *seconds = now_seconds() - start;
    stopping = 1;
    pthread_join(thread, NULL);
    natsSubscription_Destroy(sub);
    qsort(latencies, (size_t)n, sizeof(double), compare_doubles);
    *p50 = latencies[n / 2 < n ? n / 2 : n - 1];
    int i99 = (int)(n * 0.99);
    *p99 = latencies[i99 < n ? i99 : n - 1];
    free(latencies);
}

static void delete_streams(jsCtx *js) {
    char name[256];
    snprintf(name, sizeof name, "%s-dead", prefix);
    js_DeleteStream(js, stream_name, NULL, NULL);
    js_DeleteStream(js, name, NULL, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench <scenario> --url URL --prefix P --n N [--sample-at K]\n");
        return 2;
    }
    const char *scenario = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0) url = argv[i + 1];
        else if (strcmp(argv[i], "--prefix") == 0) prefix = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0) n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--sample-at") == 0) sample_at = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench.c: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    snprintf(subject, sizeof subject, "%s.bench.events.1", prefix);
    snprintf(filter, sizeof filter, "%s.bench.>", prefix);
    snprintf(stream_name, sizeof stream_name, "%s-bench", prefix);

    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    check(natsConnection_ConnectTo(&nc, url), 0, "connect");
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 4000;  // MessageStore's maxPublishesInFlight
    jo.PublishAsync.ErrHandler = on_async_error;
    check(natsConnection_JetStream(&js, nc, &jo), 0, "JetStream context");

    char extra[256] = "";
    double seconds = 0;
    int count = n;
    if (strcmp(scenario, "delete") == 0) {
        delete_streams(js);
        scenario = NULL;
    } else if (strcmp(scenario, "cold_start") == 0) {
        cold_start(js);  // prints its own line; the stream was made by prepublish
        scenario = NULL;
    } else {
        ensure_stream(js);
    }
    if (scenario == NULL) {
    } else if (strcmp(scenario, "prepublish") == 0) {
        publish_pipelined(js);
        scenario = NULL;
    } else if (strcmp(scenario, "publish_sync") == 0) {
        double start = now_seconds();
        publish_sync(js);
        seconds = now_seconds() - start;
    } else if (strcmp(scenario, "publish_pipelined") == 0) {
        double start = now_seconds();
        publish_pipelined(js);
        seconds = now_seconds() - start;
    } else if (strcmp(scenario, "consume") == 0 || strcmp(scenario, "memory") == 0) {
        double start = now_seconds();
        long rss_at_sample = consume(js, "bench-worker", n);
        seconds = now_seconds() - start;
        if (strcmp(scenario, "memory") == 0)
            snprintf(extra, sizeof extra, ",\"rss_bytes\":%ld,\"rss_bytes_at_50k\":%ld", proc_status("VmHWM"),
                     rss_at_sample);
    } else if (strcmp(scenario, "publish_fanin") == 0) {
        double start = now_seconds();
        publish_fanin(js);
        seconds = now_seconds() - start;
    } else if (strcmp(scenario, "large_messages") == 0) {
        seconds = large_messages(js);
        snprintf(extra, sizeof extra, ",\"mb_per_second\":%.3f", 2.0 * n * LARGE_BLOB / seconds / 1048576.0);
    } else if (strcmp(scenario, "replay") == 0) {
        double start = now_seconds();
        replay(js);
        seconds = now_seconds() - start;
    } else if (strcmp(scenario, "latency") == 0) {
        double p50 = 0, p99 = 0;
        latency(js, &seconds, &p50, &p99);
        snprintf(extra, sizeof extra, ",\"p50_ms\":%.4f,\"p99_ms\":%.4f", p50, p99);
    } else {
        fprintf(stderr, "bench.c: unknown scenario %s\n", scenario);
        return 2;
    }
    if (scenario) print_result(scenario, count, seconds, extra);

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
