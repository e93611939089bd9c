/*
 * ckstore-costs: what the steps that ckstore's design requires cost on this
 * machine, measured one by one, and the least time per operation of the
 * benchmark's workloads that follows from them, with every B-tree access
 * counted as free (docs/performance.md, "What the design costs").
 *
 *     ckstore-costs DATA.jsonl [DIR]
 *
 * DATA.jsonl is the peer benchmark's generator output (`gen N`): its lines
 * are what an import parses. DIR (default: the current directory) receives
 * a scratch file for the append measurement, removed at the end.
 *
 * Each primitive is timed over many iterations, five times; the median of
 * the five is printed, in microseconds per call. The primitives are
 * libsodium's and Jansson's own, called as ckstore calls them (the sizes
 * are those of the workload's records), not ckstore's functions: this is a
 * floor under ckstore, not a profile of it.
 *
 * Uses no file of ../shared: it is built with the project (CK_BUILD_BENCH).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPEATS 5

typedef struct line {
    char *p;
    size_t n;
} line;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double v[REPEATS])
{
    qsort(v, REPEATS, sizeof v[0], cmp_double);
    return v[REPEATS / 2];
}

/* A sink the compiler cannot see through, so no loop is optimised away. */
static volatile unsigned char g_sink;

static double time_parse(const line *lines, size_t n)
{
    double r[REPEATS];
    for (int k = 0; k < REPEATS; k++) {
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            json_error_t err;
            json_t *j = json_loadb(lines[i].p, lines[i].n, 0, &err);
            if (j == NULL) {
                fprintf(stderr, "ckstore-costs: line %zu is not JSON: %s\n", i + 1, err.text);
                exit(1);
            }
            g_sink ^= (unsigned char)json_object_size(j);
            json_decref(j);
        }
        r[k] = (now_s() - t0) / (double)n * 1e6;
    }
    return median(r);
}

/* XChaCha20-Poly1305 of `len` bytes with `aad_len` bytes of associated
 * data: seal (counter nonce, as ckstore's) or open. */
static double time_aead(size_t len, size_t aad_len, int open, size_t iters)
{
    unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    unsigned char pt[256], ct[256 + crypto_aead_xchacha20poly1305_ietf_ABYTES], aad[64];
    unsigned long long ct_len = 0;
    double r[REPEATS];
    randombytes_buf(key, sizeof key);
    randombytes_buf(pt, sizeof pt);
    randombytes_buf(aad, sizeof aad);
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, pt, len, aad, aad_len, NULL, nonce,
                                               key);
    for (int k = 0; k < REPEATS; k++) {
        double t0 = now_s();
        for (size_t i = 0; i < iters; i++) {
            if (open) {
                if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ct_len, aad,
                                                               aad_len, nonce, key) != 0) {
                    fprintf(stderr, "ckstore-costs: decryption failed\n");
                    exit(1);
                }
            } else {
                nonce[0] = (unsigned char)i;
                nonce[1] = (unsigned char)(i >> 8);
                crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, pt, len, aad, aad_len, NULL,
                                                           nonce, key);
            }
            g_sink ^= pt[0] ^ ct[0];
        }
        r[k] = (now_s() - t0) / (double)iters * 1e6;
    }
    sodium_memzero(key, sizeof key);
    return median(r);
}

/* Keyed BLAKE2b of `len` bytes to `out_len` bytes. */
static double time_hash(size_t len, size_t out_len, size_t iters)
{
    unsigned char key[crypto_generichash_KEYBYTES], in[256], out[64];
    double r[REPEATS];
    randombytes_buf(key, sizeof key);
    randombytes_buf(in, sizeof in);
    for (int k = 0; k < REPEATS; k++) {
        double t0 = now_s();
        for (size_t i = 0; i < iters; i++) {
            in[0] = (unsigned char)i;
            crypto_generichash(out, out_len, in, len, key, sizeof key);
            g_sink ^= out[0];
        }
        r[k] = (now_s() - t0) / (double)iters * 1e6;
    }
    sodium_memzero(key, sizeof key);
    return median(r);
}

/* One write() of a `len`-byte frame to the end of an O_APPEND file: what
 * the audit log does per entry in batched mode. */
static double time_append(const char *dir, size_t len, size_t iters)
{
    char path[4096];
    unsigned char frame[512];
    double r[REPEATS];
    if (snprintf(path, sizeof path, "%s/ckstore-costs-%ld.tmp", dir, (long)getpid()) >=
        (int)sizeof path) {
        fprintf(stderr, "ckstore-costs: directory name too long\n");
        exit(1);
    }
    memset(frame, 0xa5, sizeof frame);
    for (int k = 0; k < REPEATS; k++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0) {
            fprintf(stderr, "ckstore-costs: %s: %s\n", path, strerror(errno));
            exit(1);
        }
        double t0 = now_s();
        for (size_t i = 0; i < iters; i++) {
            if (write(fd, frame, len) != (ssize_t)len) {
                fprintf(stderr, "ckstore-costs: write: %s\n", strerror(errno));
                exit(1);
            }
        }
        r[k] = (now_s() - t0) / (double)iters * 1e6;
        close(fd);
    }
    unlink(path);
    return median(r);
}

static line *read_lines(const char *path, size_t *n_out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "ckstore-costs: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    size_t n = 0, cap = 0;
    line *v = NULL;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t len;
    /* 20 000 lines are plenty for a per-line average. */
    while (n < 20000 && (len = getline(&buf, &bcap, f)) > 0) {
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            line *nv = realloc(v, cap * sizeof *v);
            if (nv == NULL) {
                fprintf(stderr, "ckstore-costs: out of memory\n");
                exit(1);
            }
            v = nv;
        }
        v[n].p = malloc((size_t)len);
        if (v[n].p == NULL) {
            fprintf(stderr, "ckstore-costs: out of memory\n");
            exit(1);
        }
        memcpy(v[n].p, buf, (size_t)len);
        v[n].n = (size_t)len;
        n++;
    }
    free(buf);
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "ckstore-costs: %s holds no line\n", path);
        exit(1);
    }
    *n_out = n;
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: ckstore-costs DATA.jsonl [DIR]\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "ckstore-costs: libsodium cannot start\n");
        return 1;
    }
    size_t nlines;
    line *lines = read_lines(argv[1], &nlines);
    const size_t it = 400000;

    /* Sizes of the workload's records (docs/storage-format.md): a value's
     * plaintext is its write time (8) and a short msgpack string (~16);
     * its AAD "ckv1" || store id (16) || subject id (16) || field (2) ||
     * version (1); a data key is 32 bytes; an audit frame of a release
     * ~160 bytes; chain hash input = previous hash (32) + entry (~120). */
    double parse = time_parse(lines, nlines);
    double seal_value = time_aead(24, 39, 0, it);
    double open_value = time_aead(24, 39, 1, it);
    double open_key = time_aead(32, 37, 1, it);
    double seal_key = time_aead(32, 37, 0, it);
    double seal_consent = time_aead(128, 49, 0, it);
    double hash_short = time_hash(40, 16, it);
    double hash_chain = time_hash(152, 32, it);
    double append = time_append(argc == 3 ? argv[2] : ".", 160, it / 4);

    printf("# ckstore-costs: microseconds per call, median of %d runs\n", REPEATS);
    printf("primitive  jansson_parse_line   %8.3f  (%zu lines of %s)\n", parse, nlines, argv[1]);
    printf("primitive  seal_value_24B       %8.3f\n", seal_value);
    printf("primitive  open_value_24B       %8.3f\n", open_value);
    printf("primitive  seal_consent_128B    %8.3f\n", seal_consent);
    printf("primitive  wrap_data_key        %8.3f\n", seal_key);
    printf("primitive  unwrap_data_key      %8.3f\n", open_key);
    printf("primitive  blake2b_keyed_40B    %8.3f\n", hash_short);
    printf("primitive  blake2b_chain_152B   %8.3f\n", hash_chain);
    printf("primitive  append_write_160B    %8.3f\n", append);

    /* W1: per customer, an import line: parse it; seal its 12 values
     * (DESIGN.md 5: each value sealed under the subject's key); wrap the
     * new subject's data key; seal at least one consent record for its 6
     * consents (issue 4: consent records are sealed, with evidence); blind
     * indexes of the ref and of the 2 identifying fields (issue 3). */
    double w1 = parse + 12 * seal_value + seal_key + seal_consent + 3 * hash_short;
    /* W2/W3: per release, beyond what the floor does (its B-tree reads and
     * the decryption of the released values, which ckstore does too): the
     * ref's blind index (W3: the e-mail's - the floor hashes that one
     * too); unwrapping the subject's data key (DESIGN.md 5); the answer's
     * pseudonym (issue 4: context key and tag, 2 hashes); the audit entry
     * (issue 5: the audit pseudonym's salt and tag, 2 hashes; the chain
     * hash; one write before the answer is returned - fail closed). */
    double w2_extra = hash_short + open_key + 2 * hash_short + 2 * hash_short + hash_chain + append;
    /* W4: per candidate (a subject with the purpose granted, from the
     * consent index): unwrap its key, open the predicate's field; per
     * match: open the released field, the answer's pseudonym and the
     * audit entry. */
    double w4_cand = open_key + open_value;
    double w4_match = open_value + 4 * hash_short + hash_chain + append;

    printf("lower_bound W1_load_per_customer  %8.3f  us, B-tree work not counted\n", w1);
    printf("lower_bound W2_extra_per_release  %8.3f  us, on top of the floor's own work\n",
           w2_extra);
    printf("lower_bound W4_per_candidate      %8.3f  us\n", w4_cand);
    printf("lower_bound W4_per_match          %8.3f  us\n", w4_match);
    for (size_t i = 0; i < nlines; i++)
        free(lines[i].p);
    free(lines);
    return 0;
}
