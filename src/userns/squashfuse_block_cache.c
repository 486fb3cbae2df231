/*
 * Part of squashfuse_preload.so (see squashfuse_preload.c): a cache of
 * squashfuse's decompressed blocks.
 *
 * squashfuse keeps the last decompressed data block and three fragment
 * blocks. A first `import numpy` from a fresh mount reads about 16 MB, yet
 * made squashfuse decompress 419 blocks of 128 KiB (52 MB) and 398 metadata
 * blocks: small files share fragment blocks, one for each file read, and the
 * kernel's reads and page faults straddle blocks. The container waits on
 * every one of them. This keeps the most recently used results of the
 * decompressor, looked up by the compressed bytes themselves (an image never
 * changes, and the key needs nothing of squashfuse's layout), so a repeated
 * block costs a comparison and a copy.
 *
 * The interposed functions are the ones squashfuse_ll calls for the formats
 * an image of sarus or Sarus has (zstd, gzip, lz4); xz and lzo blocks are
 * decompressed each time, as before.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define EXPORTED __attribute__((visibility("default")))

/* Metadata blocks (8 KiB) are many and small, data and fragment blocks
 * (usually 128 KiB) few and large: each kind has its own slots so that
 * reading a large file does not push out the directories. */
#define METADATA_BLOCK_SIZE 8192
#define METADATA_SLOTS 256
#define DATA_SLOTS 64 /* 16 MiB: a first `import numpy` needs 276 blocks, and 128 slots spared only 11 more */

#define DATA_BLOCK_SIZE (128 * 1024)

struct block {
    uint64_t fingerprint;
    uint64_t last_use;
    size_t compressed_size;
    size_t size;
    unsigned char *storage; /* compressed bytes, then the decompressed ones; NULL while unused */
};

struct pool {
    struct block *slots;
    size_t count;
    size_t slot_size; /* of storage */
    unsigned char *arena;
};

static struct block metadata_slots[METADATA_SLOTS];
static struct block data_slots[DATA_SLOTS];
static struct pool metadata_pool = {metadata_slots, METADATA_SLOTS, 2 * METADATA_BLOCK_SIZE, NULL};
static struct pool data_pool = {data_slots, DATA_SLOTS, 2 * DATA_BLOCK_SIZE, NULL};
static uint64_t use_clock;
static uint64_t hits, misses;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static struct pool *pool_for(size_t size_bound) {
    return size_bound <= METADATA_BLOCK_SIZE ? &metadata_pool : &data_pool;
}

/* Finds candidates cheaply; a hit is confirmed by comparing every byte. */
static uint64_t fingerprint_of(const unsigned char *bytes, size_t size) {
    uint64_t hash = 1469598103934665603ULL ^ size;
    size_t step = size / 16 + 1;
    for (size_t i = 0; i < size; i += step) {
        hash = (hash ^ bytes[i]) * 1099511628211ULL;
    }
    for (size_t i = size > 16 ? size - 16 : 0; i < size; ++i) {
        hash = (hash ^ bytes[i]) * 1099511628211ULL;
    }
    return hash;
}

static struct block *find(struct pool *pool, uint64_t fingerprint, const void *compressed, size_t compressed_size) {
    for (size_t i = 0; i < pool->count; ++i) {
        struct block *block = &pool->slots[i];
        if (block->storage && block->fingerprint == fingerprint && block->compressed_size == compressed_size &&
            memcmp(block->storage, compressed, compressed_size) == 0) {
            return block;
        }
    }
    return NULL;
}

static struct block *least_recently_used(struct pool *pool) {
    struct block *oldest = &pool->slots[0];
    for (size_t i = 1; i < pool->count && oldest->storage; ++i) {
        if (!pool->slots[i].storage || pool->slots[i].last_use < oldest->last_use) {
            oldest = &pool->slots[i];
        }
    }
    return oldest;
}

/* A block squashfuse asks to decompress, fingerprinted once for the lookup
 * and, on a miss, for keeping the result. */
struct request {
    const void *compressed;
    size_t compressed_size;
    size_t out_capacity;
    uint64_t fingerprint;
};

static struct request request_for(const void *compressed, size_t compressed_size, size_t out_capacity) {
    struct request request = {compressed, compressed_size, out_capacity, fingerprint_of(compressed, compressed_size)};
    return request;
}

/* Copies a cached result into out and returns its size, or returns -1. */
static long cached(const struct request *request, void *out) {
    long size = -1;
    pthread_mutex_lock(&cache_lock);
    struct block *block = find(pool_for(request->out_capacity), request->fingerprint, request->compressed,
                               request->compressed_size);
    if (block && block->size <= request->out_capacity) {
        memcpy(out, block->storage + request->compressed_size, block->size);
        block->last_use = ++use_clock;
        size = (long)block->size;
        ++hits;
    } else {
        ++misses;
    }
    pthread_mutex_unlock(&cache_lock);
    return size;
}

/* One mapping for all slots of a pool, in huge pages where the kernel gives
 * them: on a VM every page fault is expensive, and a cache that took one
 * fault per 4 KiB of every block it keeps cost more than it saved. */
static unsigned char *arena(size_t size) {
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        return NULL; /* then nothing is kept */
    }
    madvise(memory, size, MADV_HUGEPAGE);
    return memory;
}

static void remember(const struct request *request, const void *data, size_t size) {
    struct pool *pool = pool_for(request->out_capacity);
    if (request->compressed_size + size > pool->slot_size) { /* blocks larger than usual are not kept */
        return;
    }
    pthread_mutex_lock(&cache_lock);
    if (!pool->arena && !(pool->arena = arena(pool->count * pool->slot_size))) {
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    struct block *block = least_recently_used(pool);
    if (!block->storage) {
        block->storage = pool->arena + (size_t)(block - pool->slots) * pool->slot_size;
    }
    memcpy(block->storage, request->compressed, request->compressed_size);
    memcpy(block->storage + request->compressed_size, data, size);
    block->fingerprint = request->fingerprint;
    block->compressed_size = request->compressed_size;
    block->size = size;
    block->last_use = ++use_clock;
    pthread_mutex_unlock(&cache_lock);
}

static void *next_function(const char *name) {
    void *function = dlsym(RTLD_NEXT, name);
    if (!function) { /* only reached when squashfuse calls it, so its library is loaded */
        fprintf(stderr, "squashfuse preload: %s not found\n", name);
        abort();
    }
    return function;
}

typedef size_t (*zstd_decompress_function)(void *, size_t, const void *, size_t);
typedef int (*zlib_uncompress_function)(unsigned char *, unsigned long *, const unsigned char *, unsigned long);
typedef int (*lz4_decompress_function)(const char *, char *, int, int);

EXPORTED size_t ZSTD_decompress(void *out, size_t out_capacity, const void *compressed, size_t compressed_size) {
    struct request request = request_for(compressed, compressed_size, out_capacity);
    long size = cached(&request, out);
    if (size >= 0) {
        return (size_t)size;
    }
    static zstd_decompress_function real;
    if (!real) {
        real = (zstd_decompress_function)next_function("ZSTD_decompress");
    }
    size_t result = real(out, out_capacity, compressed, compressed_size);
    if (result <= out_capacity) { /* zstd's error codes are larger than any size */
        remember(&request, out, result);
    }
    return result;
}

EXPORTED int uncompress(unsigned char *out, unsigned long *out_size, const unsigned char *compressed,
                        unsigned long compressed_size) {
    struct request request = request_for(compressed, compressed_size, *out_size);
    long size = cached(&request, out);
    if (size >= 0) {
        *out_size = (unsigned long)size;
        return 0; /* Z_OK */
    }
    static zlib_uncompress_function real;
    if (!real) {
        real = (zlib_uncompress_function)next_function("uncompress");
    }
    int result = real(out, out_size, compressed, compressed_size);
    if (result == 0) {
        remember(&request, out, *out_size);
    }
    return result;
}

EXPORTED int LZ4_decompress_safe(const char *compressed, char *out, int compressed_size, int out_capacity) {
    static lz4_decompress_function real;
    if (!real) {
        real = (lz4_decompress_function)next_function("LZ4_decompress_safe");
    }
    if (compressed_size < 0 || out_capacity < 0) {
        return real(compressed, out, compressed_size, out_capacity);
    }
    struct request request = request_for(compressed, (size_t)compressed_size, (size_t)out_capacity);
    long size = cached(&request, out);
    if (size >= 0) {
        return (int)size;
    }
    int result = real(compressed, out, compressed_size, out_capacity);
    if (result >= 0) {
        remember(&request, out, (size_t)result);
    }
    return result;
}

/* How often the cache spared a decompression (for the unit tests). */
EXPORTED void sarus_block_cache_counts(uint64_t *hit_count, uint64_t *miss_count) {
    pthread_mutex_lock(&cache_lock);
    *hit_count = hits;
    *miss_count = misses;
    pthread_mutex_unlock(&cache_lock);
}
