// kprof: a kernel-time profile of any CUDA process, for a GPU machine without Nsight.
//
// The CUDA driver loads this library into a process when CUDA_INJECTION64_PATH names it, and
// calls InitializeInjection() when CUDA starts. It asks CUPTI's activity API for a record of
// every kernel, memcpy and memset on the GPU, sums their durations by name, and at exit writes
// KPROF_OUT (default kprof.csv): one line per name with the count, the total nanoseconds on
// the GPU, and the first start and last end (the span the GPU was in use).
//
//   CUDA_INJECTION64_PATH=$PWD/libkprof.so KPROF_OUT=run.csv hone bench --device cuda ...
//
// bench/kernel_profile.py subtracts two such profiles (a run of N steps and one of M) to get
// each kernel's time per training step, without the model load and warm-up. The same library
// profiles PyTorch (python is a CUDA process like any other), so both sides are measured alike.
// Built by bench/gpu-binary.sh against CUPTI 13's headers.
#include <cupti.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#define BUFFER_BYTES (8u << 20)
#define TABLE_SIZE 8192 // open addressing; names are few (hundreds)

typedef struct {
    char *name;
    uint64_t count;
    uint64_t total_ns;
} Entry;

static Entry table[TABLE_SIZE];
static uint64_t first_start = UINT64_MAX, last_end = 0, dropped = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int finished = 0;

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

// Adds one interval under `name` (the lock is held).
static void add(const char *name, uint64_t start, uint64_t end) {
    if (!name) name = "(unnamed)";
    uint64_t i = hash(name) % TABLE_SIZE;
    for (uint64_t probes = 0; probes < TABLE_SIZE; probes++, i = (i + 1) % TABLE_SIZE) {
        if (!table[i].name) {
            table[i].name = strdup(name);
            if (!table[i].name) return;
        } else if (strcmp(table[i].name, name) != 0) {
            continue;
        }
        table[i].count++;
        table[i].total_ns += end > start ? end - start : 0;
        if (start < first_start) first_start = start;
        if (end > last_end) last_end = end;
        return;
    }
}

static const char *copy_kind(uint8_t kind) {
    switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "[memcpy host to device]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "[memcpy device to host]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "[memcpy device to device]";
    default: return "[memcpy other]";
    }
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(8, BUFFER_BYTES);
    *size = *buffer ? BUFFER_BYTES : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size,
                                      size_t valid) {
    (void)ctx;
    (void)stream;
    (void)size;
    CUpti_Activity *record = NULL;
    pthread_mutex_lock(&lock);
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        switch (record->kind) {
        case CUPTI_ACTIVITY_KIND_KERNEL:
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
            CUpti_ActivityKernel10 *k = (CUpti_ActivityKernel10 *)record;
            add(k->name, k->start, k->end);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMCPY: {
            CUpti_ActivityMemcpy6 *m = (CUpti_ActivityMemcpy6 *)record;
            add(copy_kind(m->copyKind), m->start, m->end);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMSET: {
            CUpti_ActivityMemset4 *m = (CUpti_ActivityMemset4 *)record;
            add("[memset]", m->start, m->end);
            break;
        }
        default:
            break;
        }
    }
    size_t lost = 0;
    if (cuptiActivityGetNumDroppedRecords(NULL, 0, &lost) == CUPTI_SUCCESS) dropped += lost;
    pthread_mutex_unlock(&lock);
    free(buffer);
}

// Flushes CUPTI's buffers and writes the table (once, at exit).
static void finish(void) {
    if (finished) return;
    finished = 1;
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    const char *path = getenv("KPROF_OUT");
    FILE *out = fopen(path && *path ? path : "kprof.csv", "w");
    if (!out) {
        perror("kprof: cannot write the profile");
        return;
    }
    pthread_mutex_lock(&lock);
    fprintf(out, "# first_start_ns=%llu last_end_ns=%llu dropped=%llu\n",
            (unsigned long long)(first_start == UINT64_MAX ? 0 : first_start),
            (unsigned long long)last_end, (unsigned long long)dropped);
    fprintf(out, "count\ttotal_ns\tname\n");
    for (int i = 0; i < TABLE_SIZE; i++) {
        if (table[i].name) {
            fprintf(out, "%llu\t%llu\t%s\n", (unsigned long long)table[i].count,
                    (unsigned long long)table[i].total_ns, table[i].name);
        }
    }
    pthread_mutex_unlock(&lock);
    fclose(out);
}

static void check(CUptiResult r, const char *what) {
    if (r != CUPTI_SUCCESS) {
        const char *message = NULL;
        cuptiGetResultString(r, &message);
        fprintf(stderr, "kprof: %s failed: %s\n", what, message ? message : "?");
    }
}

// Called by the CUDA driver (CUDA_INJECTION64_PATH) when the process initialises CUDA.
int InitializeInjection(void) {
    check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "register");
    check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "kernel records");
    check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY), "memcpy records");
    check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET), "memset records");
    atexit(finish);
    return 1;
}
