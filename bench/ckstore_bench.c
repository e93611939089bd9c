/*
 * ckstore_bench.c - ckstore on the peer benchmark: the same data, workloads,
 * seeds and output lines as the baselines (LMDB "floor", SQLCipher, SQLite)
 * of the peer benchmark, so that its run.sh puts ckstore in the same table
 * and checks that every system released the same data.
 *
 *     ckstore-bench DATA.jsonl DBPATH        (DURABILITY=full|off)
 *
 * DATA.jsonl is the generator's output (one customer per line, ids dense
 * 1..N); DBPATH is the store directory, removed first if it holds a store
 * (or nothing); the key file is DBPATH.key, created fresh and removed at the
 * end. docs/performance.md describes the workloads and the results.
 *
 * Only the public interface (ckstore.h) is used, with the defaults a user
 * gets: auditing on, CK_AUDIT_BATCHED. What the peer benchmark shares in
 * its common.h (PRNG, seeds, query sequences, scope table, checksum, report
 * format) is written out again here so that a clone of this project builds
 * the program on its own; keep the two in step.
 *
 * Output: one line per workload, `name ops seconds ops_per_sec count
 * checksum`, then `# db_bytes N`; other `#` lines are details (run.sh
 * ignores them). Any unexpected library error ends the program with status
 * 1 and the library's message on stderr.
 */
#include "ckstore.h"

#include <errno.h>
#include <pthread.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* What the peers share (their common.h), written out again                  */
/* ------------------------------------------------------------------------ */

#define NFIELDS   12
#define NPURPOSES 6
static const char *const FIELD[NFIELDS] = {"email",
                                           "phone",
                                           "first_name",
                                           "last_name",
                                           "birth_date",
                                           "city",
                                           "postal_code",
                                           "loyalty_tier",
                                           "preferred_channel",
                                           "last_purchase_at",
                                           "total_spend_cents",
                                           "interests"};
enum {
    F_EMAIL,
    F_PHONE,
    F_FIRST,
    F_LAST,
    F_BIRTH,
    F_CITY,
    F_POSTAL,
    F_TIER,
    F_CHANNEL,
    F_LASTPUR,
    F_SPEND,
    F_INTERESTS
};
static const char *const PURPOSE[NPURPOSES] = {
    "service", "personalization", "marketing.email", "marketing.sms", "analytics", "partners"};
enum { P_SERVICE, P_PERSO, P_MEMAIL, P_MSMS, P_ANALYTICS, P_PARTNERS };
#define B(f) (1u << (f))
/* Fixed consent scope: purpose -> bitmask of the fields it may release. */
static const uint16_t PURPOSE_SCOPE[NPURPOSES] = {
    0x0FFF, /* service: all fields */
    B(F_FIRST) | B(F_CITY) | B(F_TIER) | B(F_INTERESTS) | B(F_LASTPUR),
    B(F_EMAIL) | B(F_FIRST),
    B(F_PHONE) | B(F_FIRST),
    B(F_CITY) | B(F_POSTAL) | B(F_TIER) | B(F_SPEND) | B(F_BIRTH),
    B(F_EMAIL) | B(F_CITY)};

/* Deterministic PRNG (splitmix64). */
typedef struct rng {
    uint64_t s;
} rng;
static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(rng_next(r) % n);
}

#define W2_QUERIES  100000
#define W3_QUERIES  100000
#define W4_REPEATS  10
#define W5_UPDATES  10000
#define W6_ERASURES 1000
#define W7_ERASURES 50   /* extra: single erasures, median reported */
#define W8_ERASURES 1000 /* extra: one batch erasure */
#define SEED_W2     0x5EED0002u
#define SEED_W3     0x5EED0003u
#define SEED_W5A    0x5EED005Au
#define SEED_W5B    0x5EED005Bu
#define SEED_W6     0x5EED0006u

/* A random customer id in 1..n (ids are dense 1..N). */
static uint32_t pick_id(rng *r, long n)
{
    return 1 + rng_below(r, (uint32_t)n);
}
/* W5: a withdrawable purpose (never service, which has a contract basis). */
static int pick_withdrawable(rng *r)
{
    return 1 + (int)rng_below(r, NPURPOSES - 1);
}

/* W6: W6_ERASURES distinct ids (partial Fisher-Yates); *k receives how
 * many. The next W7_ERASURES + W8_ERASURES positions, distinct from them,
 * are for the extras W7 and W8 (drawing them after W6's leaves W6's ids as
 * the peers draw them). Caller frees. */
static uint32_t *pick_erasures(long n, long *k)
{
    uint32_t *a = malloc((size_t)n * sizeof *a);
    rng r = {SEED_W6};
    if (a == NULL)
        return NULL;
    for (long i = 0; i < n; i++)
        a[i] = (uint32_t)(i + 1);
    *k = n < W6_ERASURES ? n : W6_ERASURES;
    long all = *k + W7_ERASURES + W8_ERASURES;
    if (all > n)
        all = n;
    for (long i = 0; i < all; i++) {
        long j = i + (long)rng_below(&r, (uint32_t)(n - i));
        uint32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
    return a;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One line per workload, in the peers' format. */
static void report(const char *name, long ops, double secs, unsigned long long count,
                   unsigned long long hash)
{
    printf("%-18s %8ld %10.4f %12.0f %10llu %016llx\n", name, ops, secs, (double)ops / secs, count,
           hash);
    fflush(stdout);
}

/* Order-independent checksum of a released (field, value) pair, summed:
 * FNV-1a(name 0x00 value). */
static unsigned long long chk(const char *name, const void *val, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *s = name; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    h = h * 1099511628211ull; /* the 0x00 separator */
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const uint8_t *)val)[i]) * 1099511628211ull;
    return h;
}

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "ckstore-bench: " __VA_ARGS__);                                            \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

/* A library call that must succeed. */
#define CK(st, call)                                                                               \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != CK_OK)                                                                          \
            DIE("%s: %s: %s", #call, ck_strerror(rc_), ck_errmsg(st));                             \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The data                                                                  */
/* ------------------------------------------------------------------------ */

/* A customer as the queries need it. Values point into the import text
 * (the generator never writes an escape, so the JSON string's bytes are
 * the value's); they are not NUL-terminated. */
typedef struct customer {
    uint32_t id;
    uint8_t consent; /* bit p set: purpose p granted */
    uint16_t len[NFIELDS];
    const char *val[NFIELDS];
} customer;

typedef struct dataset {
    customer *c;
    long n;
    char *text; /* the import text: the lines with "ref" for "id" */
    size_t text_len;
} dataset;

static void grow_text(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t nc = *cap * 2 > need ? *cap * 2 : need;
    char *p = realloc(*buf, nc);
    if (p == NULL)
        DIE("out of memory");
    *buf = p;
    *cap = nc;
}

/* Read the generator's file into import text: each line's leading
 * `{"id":123,` becomes `{"ref":"123",` (ckstore names a customer by its
 * CRM number, a string); the rest is kept as it is. Read line by line so
 * that the file is never in memory twice. */
static void read_import_text(dataset *d, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        DIE("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0)
        DIE("cannot stat %s: %s", path, strerror(errno));
    size_t cap = (size_t)sb.st_size + (size_t)sb.st_size / 32 + 4096, len = 0;
    char *buf = malloc(cap), *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long lineno = 0;
    if (buf == NULL)
        DIE("out of memory");
    while ((n = getline(&line, &lcap, f)) > 0) {
        lineno++;
        size_t ln = (size_t)n;
        while (ln > 0 && (line[ln - 1] == '\n' || line[ln - 1] == '\r'))
            ln--;
        if (ln == 0)
            continue;
        static const char pre[] = "{\"id\":";
        if (ln < sizeof pre || memcmp(line, pre, sizeof pre - 1) != 0)
            DIE("%s:%ld: a line must start with {\"id\":", path, lineno);
        size_t i = sizeof pre - 1, d0 = i;
        while (i < ln && line[i] >= '0' && line[i] <= '9')
            i++;
        if (i == d0 || i >= ln || line[i] != ',')
            DIE("%s:%ld: \"id\" must be a number followed by ','", path, lineno);
        size_t digits = i - d0, rest = ln - (i + 1);
        grow_text(&buf, &cap, len + 9 + digits + 2 + rest + 1);
        memcpy(buf + len, "{\"ref\":\"", 8);
        len += 8;
        memcpy(buf + len, line + d0, digits);
        len += digits;
        memcpy(buf + len, "\",", 2);
        len += 2;
        memcpy(buf + len, line + i + 1, rest);
        len += rest;
        buf[len++] = '\n';
    }
    if (ferror(f))
        DIE("cannot read %s", path);
    free(line);
    fclose(f);
    d->text = buf;
    d->text_len = len;
}

static int field_index(const char *s, size_t n)
{
    for (int i = 0; i < NFIELDS; i++)
        if (strlen(FIELD[i]) == n && memcmp(FIELD[i], s, n) == 0)
            return i;
    return -1;
}

static int purpose_index(const char *s, size_t n)
{
    for (int i = 0; i < NPURPOSES; i++)
        if (strlen(PURPOSE[i]) == n && memcmp(PURPOSE[i], s, n) == 0)
            return i;
    return -1;
}

/* The JSON string at *p (at its opening quote): its bytes, in place. */
static const char *json_str(const char **p, const char *end, size_t *len)
{
    const char *s = *p + 1, *b = s;
    while (s < end && *s != '"') {
        if (*s == '\\')
            DIE("a value holds a JSON escape: the benchmark reads unescaped values only");
        s++;
    }
    if (s >= end)
        DIE("unterminated string");
    *len = (size_t)(s - b);
    *p = s + 1;
    return b;
}

/* Parse the import text into customers (the peers' load_jsonl, on our
 * text): values are pointers into it. */
static void parse_dataset(dataset *d)
{
    long cap = 1024;
    d->c = malloc((size_t)cap * sizeof *d->c);
    d->n = 0;
    if (d->c == NULL)
        DIE("out of memory");
    const char *p = d->text, *end = d->text + d->text_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if (d->n == cap) {
            cap *= 2;
            customer *nc = realloc(d->c, (size_t)cap * sizeof *d->c);
            if (nc == NULL)
                DIE("out of memory");
            d->c = nc;
        }
        customer *c = &d->c[d->n++];
        memset(c, 0, sizeof *c);
        c->id = (uint32_t)strtoul(p + 8, NULL, 10); /* after {"ref":" */
        const char *q = memmem(p, (size_t)(eol - p), "\"fields\":{", 10);
        if (q == NULL)
            DIE("customer %u: no fields", c->id);
        q += 10;
        while (q < eol && *q == '"') {
            size_t kn, vn;
            const char *k = json_str(&q, eol, &kn);
            int fi = field_index(k, kn);
            if (fi < 0 || *q != ':' || q[1] != '"')
                DIE("customer %u: bad field %.*s", c->id, (int)kn, k);
            q++;
            c->val[fi] = json_str(&q, eol, &vn);
            if (vn > UINT16_MAX)
                DIE("customer %u: value too long", c->id);
            c->len[fi] = (uint16_t)vn;
            if (*q == ',')
                q++;
        }
        for (int i = 0; i < NFIELDS; i++)
            if (c->val[i] == NULL)
                DIE("customer %u: missing %s", c->id, FIELD[i]);
        q = memmem(q, (size_t)(eol - q), "\"consent\":{", 11);
        if (q == NULL)
            DIE("customer %u: no consent", c->id);
        q += 11;
        while (q < eol && *q == '"') {
            size_t kn;
            const char *k = json_str(&q, eol, &kn);
            int pi = purpose_index(k, kn);
            if (pi < 0 || *q != ':')
                DIE("customer %u: bad purpose %.*s", c->id, (int)kn, k);
            q++;
            if (eol - q >= 4 && memcmp(q, "true", 4) == 0) {
                c->consent = (uint8_t)(c->consent | (1u << pi));
                q += 4;
            } else if (eol - q >= 5 && memcmp(q, "false", 5) == 0) {
                q += 5;
            } else {
                DIE("customer %u: consent %s is not a boolean", c->id, PURPOSE[pi]);
            }
            if (*q == ',')
                q++;
        }
        if (c->id != (uint32_t)d->n)
            DIE("ids must be dense 1..N in order: line %ld has id %u", d->n, c->id);
        p = eol + 1;
    }
    if (d->n == 0)
        DIE("no customers");
}

/* ------------------------------------------------------------------------ */
/* The store                                                                 */
/* ------------------------------------------------------------------------ */

static int durable(void)
{
    const char *s = getenv("DURABILITY");
    return s == NULL || strcmp(s, "off") != 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        DIE("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* Remove DBPATH - only if it is a store directory (it holds ckstore.keys),
 * an empty directory or a file: never anything else by mistake. */
static void remove_store(const char *dir)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        if (errno == ENOENT)
            return;
        DIE("cannot stat %s: %s", dir, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) {
        char keys[4096];
        snprintf(keys, sizeof keys, "%s/ckstore.keys", dir);
        if (access(keys, F_OK) != 0) {
            if (rmdir(dir) != 0)
                DIE("%s exists and does not hold a store: not removing it", dir);
            return;
        }
        if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            DIE("cannot remove %s", dir);
    } else if (unlink(dir) != 0) {
        DIE("cannot remove %s: %s", dir, strerror(errno));
    }
}

static ck_store *store_open(const char *dir, const char *key_file, int create, ck_audit_mode mode)
{
    char err[CK_ERRMSG_MAX] = "";
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = key_file;
    o.flags = durable() ? 0u : CK_OPEN_NOSYNC;
    if (create)
        o.flags |= CK_INIT_CREATE_KEY_FILE;
    o.audit_mode = mode;
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    const char *ms = getenv("CKBENCH_MAP_MIB"); /* see docs/performance.md */
    if (ms != NULL && *ms != '\0')
        o.map_size = (size_t)strtoull(ms, NULL, 10) << 20;
    ck_store *st = NULL;
    int rc = create ? ck_init(&st, dir, &o) : ck_open(&st, dir, &o);
    if (rc != CK_OK)
        DIE("%s %s: %s: %s", create ? "ck_init" : "ck_open", dir, ck_strerror(rc), err);
    return st;
}

/* The schema: the 12 fields as strings (every value in the data is a JSON
 * string), e-mail and phone identifying; service (contract) with every
 * field, the five others on consent with the peers' scopes, no
 * minimisation. */
static void apply_schema(ck_store *st)
{
    char json[8192];
    size_t n = 0;
#define PUT(...) (n += (size_t)snprintf(json + n, sizeof json - n, __VA_ARGS__))
    PUT("{\"fields\":{");
    for (int f = 0; f < NFIELDS; f++)
        PUT("%s\"%s\":{\"type\":\"string\",\"sensitivity\":\"personal\"%s}", f ? "," : "", FIELD[f],
            f == F_EMAIL || f == F_PHONE ? ",\"identifying\":true" : "");
    PUT("},\"purposes\":{");
    for (int p = 0; p < NPURPOSES; p++) {
        PUT("%s\"%s\":{\"basis\":\"%s\",\"description\":\"benchmark purpose %s\","
            "\"benefit\":\"none: a benchmark\",\"fields\":[",
            p ? "," : "", PURPOSE[p], p == P_SERVICE ? "contract" : "consent", PURPOSE[p]);
        int first = 1;
        for (int f = 0; f < NFIELDS; f++)
            if (PURPOSE_SCOPE[p] & B(f)) {
                PUT("%s\"%s\"", first ? "" : ",", FIELD[f]);
                first = 0;
            }
        PUT("]}");
    }
    PUT("}}");
#undef PUT
    if (n >= sizeof json)
        DIE("schema too long");
    CK(st, ck_schema_apply(st, json, n, 0, NULL));
}

static void on_reject(void *ctx, uint64_t line, const char *reason)
{
    (void)ctx;
    fprintf(stderr, "ckstore-bench: import rejected line %llu: %s\n", (unsigned long long)line,
            reason);
}

/* Import `len` bytes of JSON Lines in batches of `batch` lines; the whole
 * text must be imported. */
static void import_all(ck_store *st, const char *text, size_t len, unsigned batch, long expect,
                       const char *what)
{
    ck_import_options io = CK_IMPORT_OPTIONS_INIT;
    io.actor = "bench";
    io.batch_lines = batch;
    io.on_reject = on_reject;
    ck_importer *imp = NULL;
    ck_import_stats s;
    CK(st, ck_import_begin(&imp, st, &io));
    CK(st, ck_import_feed(imp, text, len));
    CK(st, ck_import_finish(imp, &s));
    if (s.imported != (uint64_t)expect || s.rejected != 0)
        DIE("%s: imported %llu lines of %ld (%llu rejected)", what, (unsigned long long)s.imported,
            expect, (unsigned long long)s.rejected);
}

/* Sum the released fields of an answer into count and checksum. */
static void tally(const ck_result *r, unsigned long long *cnt, unsigned long long *h)
{
    size_t n = ck_result_count(r);
    for (size_t i = 0; i < n; i++) {
        const ck_field_result *f = ck_result_field(r, i);
        if (f->reason != CK_RELEASED)
            continue;
        if (f->value.type != CK_TYPE_STRING)
            DIE("field %s released as type %d, not a string", f->field, (int)f->value.type);
        *h += chk(f->field, f->value.u.str.ptr, f->value.u.str.len);
        (*cnt)++;
    }
}

/* bits[id - 1]: bit p = purpose p granted; ERASED = erased by W6. */
#define ERASED 0x80u

/* What the peers release for (id, p) with the consent bits `bits`. */
static void expect_release(const dataset *d, const uint8_t *bits, uint32_t id, int p,
                           unsigned long long *cnt, unsigned long long *h)
{
    if ((bits[id - 1] & ERASED) || !(bits[id - 1] & (1u << p)))
        return;
    const customer *c = &d->c[id - 1];
    for (int f = 0; f < NFIELDS; f++)
        if (PURPOSE_SCOPE[p] & B(f)) {
            *h += chk(FIELD[f], c->val[f], c->len[f]);
            (*cnt)++;
        }
}

static int g_mismatch;

/* Development aids (docs/performance.md, "Profiling"):
 *  CKBENCH_PROFILE=NAME with CKBENCH_PERF_CTL=CTL_FIFO,ACK_FIFO: the timed
 *    part of workload NAME is bracketed by "enable"/"disable" written to a
 *    `perf record --control=fifo:CTL_FIFO,ACK_FIFO -D -1` session, so that
 *    the profile holds that workload only;
 *  CKBENCH_STOP_AFTER=NAME: stop after workload NAME. */
static FILE *g_perf_ctl, *g_perf_ack;
static const char *g_profile;

static void perf_setup(void)
{
    const char *ctl = getenv("CKBENCH_PERF_CTL");
    g_profile = getenv("CKBENCH_PROFILE");
    if (ctl == NULL || g_profile == NULL)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s", ctl);
    char *ack = strchr(path, ',');
    if (ack != NULL)
        *ack++ = '\0';
    g_perf_ctl = fopen(path, "w");
    if (g_perf_ctl == NULL)
        DIE("cannot open %s: %s", path, strerror(errno));
    if (ack != NULL && (g_perf_ack = fopen(ack, "r")) == NULL)
        DIE("cannot open %s: %s", ack, strerror(errno));
}

static void perf_mark(const char *name, int on)
{
    if (g_perf_ctl == NULL || strcmp(name, g_profile) != 0)
        return;
    fputs(on ? "enable\n" : "disable\n", g_perf_ctl);
    fflush(g_perf_ctl);
    char line[64];
    if (g_perf_ack != NULL && fgets(line, sizeof line, g_perf_ack) == NULL)
        DIE("perf did not acknowledge");
}

/* The process's peak resident set so far (VmHWM), as a `#` line, so that
 * the workload that raises run.sh's peak_RSS can be told. */
static void note_peak(const char *after)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0) {
            printf("# peak_rss_kib %s %lld\n", after, strtoll(line + 6, NULL, 10));
            break;
        }
    fclose(f);
}

static int stop_after(const char *name)
{
    note_peak(name);
    const char *s = getenv("CKBENCH_STOP_AFTER");
    return s != NULL && strcmp(s, name) == 0;
}

/* A self-check against the data in memory (untimed): `# check` lines. */
static void check(const char *name, unsigned long long cnt, unsigned long long h,
                  unsigned long long ecnt, unsigned long long eh)
{
    if (cnt == ecnt && h == eh) {
        printf("# check %s ok\n", name);
        return;
    }
    g_mismatch = 1;
    printf("# check %s MISMATCH: expected %llu %016llx\n", name, ecnt, eh);
    fprintf(stderr,
            "ckstore-bench: %s released %llu fields (checksum %016llx); the data says %llu "
            "(%016llx)\n",
            name, cnt, h, ecnt, eh);
}

/* W2: random id, random purpose, every field of the purpose. */
static void run_point(ck_store *st, const dataset *d, const uint8_t *bits, const char *name,
                      long queries)
{
    unsigned long long cnt = 0, h = 0, ecnt = 0, eh = 0;
    char ref[16];
    rng r = {SEED_W2};
    perf_mark(name, 1);
    double t = now_s();
    for (long i = 0; i < queries; i++) {
        uint32_t id = pick_id(&r, d->n);
        int p = (int)rng_below(&r, NPURPOSES);
        snprintf(ref, sizeof ref, "%u", id);
        ck_request rq = CK_REQUEST_INIT;
        rq.actor = "bench";
        rq.purpose = PURPOSE[p];
        rq.subject.by = CK_BY_REF;
        rq.subject.value = ref;
        ck_result *res = NULL;
        int rc = ck_release(&res, st, &rq);
        if (rc == CK_ENOTFOUND && (bits[id - 1] & ERASED))
            continue; /* erased by W6: nothing to release */
        if (rc != CK_OK)
            DIE("ck_release: %s: %s", ck_strerror(rc), ck_errmsg(st));
        tally(res, &cnt, &h);
        ck_result_free(res);
    }
    double secs = now_s() - t;
    perf_mark(name, 0);
    report(name, queries, secs, cnt, h);
    r = (rng){SEED_W2};
    for (long i = 0; i < queries; i++) {
        uint32_t id = pick_id(&r, d->n);
        int p = (int)rng_below(&r, NPURPOSES);
        expect_release(d, bits, id, p, &ecnt, &eh);
    }
    check(name, cnt, h, ecnt, eh);
}

/* W2's sequence of releases split among `nthreads` threads on one handle
 * (thread k takes the releases k, k + nthreads, ...): with the handle in
 * CK_AUDIT_STRICT, what group commit gains over one thread. */
typedef struct point_job {
    ck_store *st;
    const dataset *d;
    const uint8_t *bits;
    const uint32_t *ids;
    const uint8_t *purposes;
    long from, step, queries;
    unsigned long long cnt, h;
} point_job;

static void *point_thread(void *arg)
{
    point_job *j = arg;
    char ref[16];
    for (long i = j->from; i < j->queries; i += j->step) {
        uint32_t id = j->ids[i];
        snprintf(ref, sizeof ref, "%u", id);
        ck_request rq = CK_REQUEST_INIT;
        rq.actor = "bench";
        rq.purpose = PURPOSE[j->purposes[i]];
        rq.subject.by = CK_BY_REF;
        rq.subject.value = ref;
        ck_result *res = NULL;
        int rc = ck_release(&res, j->st, &rq);
        if (rc == CK_ENOTFOUND && (j->bits[id - 1] & ERASED))
            continue;
        if (rc != CK_OK)
            DIE("ck_release: %s", ck_strerror(rc));
        tally(res, &j->cnt, &j->h);
        ck_result_free(res);
    }
    return NULL;
}

static void run_point_threads(ck_store *st, const dataset *d, const uint8_t *bits, const char *name,
                              long queries, int nthreads)
{
    unsigned long long cnt = 0, h = 0, ecnt = 0, eh = 0;
    uint32_t *ids = malloc((size_t)queries * sizeof *ids);
    uint8_t *purposes = malloc((size_t)queries);
    point_job *jobs = calloc((size_t)nthreads, sizeof *jobs);
    pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
    if (ids == NULL || purposes == NULL || jobs == NULL || tids == NULL)
        DIE("out of memory");
    rng r = {SEED_W2};
    for (long i = 0; i < queries; i++) {
        ids[i] = pick_id(&r, d->n);
        purposes[i] = (uint8_t)rng_below(&r, NPURPOSES);
    }
    perf_mark(name, 1);
    double t = now_s();
    for (int k = 0; k < nthreads; k++) {
        jobs[k] = (point_job){st, d, bits, ids, purposes, k, nthreads, queries, 0, 0};
        if (pthread_create(&tids[k], NULL, point_thread, &jobs[k]) != 0)
            DIE("pthread_create failed");
    }
    for (int k = 0; k < nthreads; k++) {
        pthread_join(tids[k], NULL);
        cnt += jobs[k].cnt;
        h += jobs[k].h;
    }
    double secs = now_s() - t;
    perf_mark(name, 0);
    report(name, queries, secs, cnt, h);
    for (long i = 0; i < queries; i++)
        expect_release(d, bits, ids[i], purposes[i], &ecnt, &eh);
    check(name, cnt, h, ecnt, eh);
    free(tids);
    free(jobs);
    free(purposes);
    free(ids);
}

/* Total size of every file in the store directory; with DETAIL, one `#`
 * line per file. */
static long long g_dir_bytes;
static int g_dir_detail;
static int size_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    if (type == FTW_F) {
        g_dir_bytes += (long long)sb->st_size;
        if (g_dir_detail)
            printf("# file %s %lld\n", path + ftw->base, (long long)sb->st_size);
    }
    return 0;
}
static long long dir_bytes(const char *dir, int detail)
{
    g_dir_bytes = 0;
    g_dir_detail = detail;
    if (nftw(dir, size_entry, 16, FTW_PHYS) != 0)
        DIE("cannot walk %s", dir);
    return g_dir_bytes;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        DIE("usage: %s DATA.jsonl DBPATH   (DURABILITY=full|off)", argv[0]);
    const char *dir = argv[2];
    char key_file[4096];
    if ((size_t)snprintf(key_file, sizeof key_file, "%s.key", dir) >= sizeof key_file)
        DIE("path too long");
    long strict_queries = W2_QUERIES;
    const char *sq = getenv("CKBENCH_STRICT_QUERIES"); /* a shorter run while developing */
    if (sq != NULL && *sq != '\0')
        strict_queries = strtol(sq, NULL, 10);

    /* Untimed: the data, in memory; a fresh store with the schema. */
    dataset d = {0};
    read_import_text(&d, argv[1]);
    parse_dataset(&d);
    uint8_t *bits = malloc((size_t)d.n);
    if (bits == NULL)
        DIE("out of memory");
    for (long i = 0; i < d.n; i++)
        bits[i] = d.c[i].consent;
    perf_setup();
    remove_store(dir);
    if (unlink(key_file) != 0 && errno != ENOENT)
        DIE("cannot remove %s: %s", key_file, strerror(errno));
    note_peak("data_loaded");
    ck_store *st = store_open(dir, key_file, 1, CK_AUDIT_BATCHED);
    uint32_t *er_all = NULL; /* W6's customers, then W7's and W8's */
    long er_k = 0;
    apply_schema(st);
#ifdef CK_BENCH_NO_AUDIT
    const char *variant = ", releases NOT audited (ckstore-bench-noaudit)";
#else
    const char *variant = "";
#endif
    printf("# ckstore %s, N=%ld, durability %s%s%s\n", ck_version(), d.n,
           durable() ? "full" : "off", getenv("CKBENCH_MAP_MIB") ? ", map size set" : "", variant);

    /* W1: every customer in one import batch (one transaction). */
    unsigned batch = d.n > (1L << 20) ? 1u << 20 : (unsigned)d.n;
    if ((long)batch != d.n)
        fprintf(stderr, "ckstore-bench: N above 2^20: W1 imports in batches of %u\n", batch);
    perf_mark("W1_load", 1);
    double t = now_s();
    import_all(st, d.text, d.text_len, batch, d.n, "W1_load");
    double secs = now_s() - t;
    perf_mark("W1_load", 0);
    report("W1_load", d.n, secs, (unsigned long long)d.n, 0);
    if (stop_after("W1_load"))
        goto out;

    /* W2: point releases. */
    run_point(st, &d, bits, "W2_point", W2_QUERIES);
    if (stop_after("W2_point"))
        goto out;

    /* W3: look-up by e-mail (blind index), then marketing.email. */
    {
        unsigned long long cnt = 0, h = 0, ecnt = 0, eh = 0;
        rng r = {SEED_W3};
        perf_mark("W3_email", 1);
        t = now_s();
        for (int i = 0; i < W3_QUERIES; i++) {
            const customer *c = &d.c[pick_id(&r, d.n) - 1];
            ck_request rq = CK_REQUEST_INIT;
            rq.actor = "bench";
            rq.purpose = PURPOSE[P_MEMAIL];
            rq.subject.by = CK_BY_LOOKUP;
            rq.subject.field = "email";
            rq.subject.value = c->val[F_EMAIL];
            rq.subject.len = c->len[F_EMAIL];
            ck_result *res = NULL;
            CK(st, ck_release(&res, st, &rq));
            tally(res, &cnt, &h);
            ck_result_free(res);
        }
        secs = now_s() - t;
        perf_mark("W3_email", 0);
        report("W3_email", W3_QUERIES, secs, cnt, h);
        r = (rng){SEED_W3};
        for (int i = 0; i < W3_QUERIES; i++)
            expect_release(&d, bits, pick_id(&r, d.n), P_MEMAIL, &ecnt, &eh);
        check("W3_email", cnt, h, ecnt, eh);
        if (stop_after("W3_email"))
            goto out;
    }

    /* W4: partners, city = Paris -> e-mail; count and checksum of one run. */
    {
        unsigned long long cnt = 0, h = 0, ecnt = 0, eh = 0;
        static const char *const want[] = {"email"};
        ck_predicate where = {"city", CK_PRED_EQ, "Paris", 0};
        perf_mark("W4_segment", 1);
        t = now_s();
        for (int i = 0; i < W4_REPEATS; i++) {
            cnt = h = 0;
            ck_segment_request sr = CK_SEGMENT_INIT;
            sr.actor = "bench";
            sr.purpose = PURPOSE[P_PARTNERS];
            sr.where = &where;
            sr.nwhere = 1;
            sr.fields = want;
            sr.nfields = 1;
            ck_cursor *cur = NULL;
            const ck_result *res;
            int rc;
            CK(st, ck_segment(&cur, st, &sr));
            while ((rc = ck_segment_next(cur, &res)) == CK_OK)
                tally(res, &cnt, &h);
            if (rc != CK_ENOTFOUND)
                DIE("ck_segment_next: %s: %s", ck_strerror(rc), ck_errmsg(st));
            ck_cursor_free(cur);
        }
        secs = now_s() - t;
        perf_mark("W4_segment", 0);
        report("W4_segment", W4_REPEATS, secs, cnt, h);
        for (long i = 0; i < d.n; i++)
            if ((bits[i] & (1u << P_PARTNERS)) && d.c[i].len[F_CITY] == 5 &&
                memcmp(d.c[i].val[F_CITY], "Paris", 5) == 0) {
                eh += chk("email", d.c[i].val[F_EMAIL], d.c[i].len[F_EMAIL]);
                ecnt++;
            }
        check("W4_segment", cnt, h, ecnt, eh);
        if (stop_after("W4_segment"))
            goto out;
    }

    /* W5: withdrawals, one transaction each; `count` = consents that were
     * granted and are now withdrawn, from the bits in memory as the peers
     * count (a withdrawal of a consent already off is an op, no flip). */
    {
        unsigned long long cnt = 0;
        char ref[16];
        rng r = {SEED_W5A};
        perf_mark("W5_withdraw_txn", 1);
        t = now_s();
        for (int i = 0; i < W5_UPDATES; i++) {
            uint32_t id = pick_id(&r, d.n);
            int p = pick_withdrawable(&r);
            snprintf(ref, sizeof ref, "%u", id);
            ck_who who = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
            ck_consent c = CK_CONSENT_INIT;
            c.purpose = PURPOSE[p];
            c.state = CK_CONSENT_WITHDRAWN;
            CK(st, ck_consent_record(st, &who, &c, "bench"));
            if (bits[id - 1] & (1u << p)) {
                bits[id - 1] = (uint8_t)(bits[id - 1] & ~(1u << p));
                cnt++;
            }
        }
        secs = now_s() - t;
        perf_mark("W5_withdraw_txn", 0);
        report("W5_withdraw_txn", W5_UPDATES, secs, cnt, 0);
        if (stop_after("W5_withdraw_txn"))
            goto out;
    }

    /* W5 batch: the public API's one batched consent path is import: the
     * 10 000 withdrawals as import lines, built before the clock. */
    {
        unsigned long long cnt = 0;
        size_t cap = (size_t)W5_UPDATES * 80, len = 0;
        char *text = malloc(cap);
        if (text == NULL)
            DIE("out of memory");
        rng r = {SEED_W5B};
        for (int i = 0; i < W5_UPDATES; i++) {
            uint32_t id = pick_id(&r, d.n);
            int p = pick_withdrawable(&r);
            int n = snprintf(text + len, cap - len,
                             "{\"ref\":\"%u\",\"consent\":{\"%s\":{\"state\":\"withdrawn\"}}}\n",
                             id, PURPOSE[p]);
            if (n < 0 || (size_t)n >= cap - len)
                DIE("W5 batch text too long");
            len += (size_t)n;
            if (bits[id - 1] & (1u << p)) {
                bits[id - 1] = (uint8_t)(bits[id - 1] & ~(1u << p));
                cnt++;
            }
        }
        perf_mark("W5_withdraw_batch", 1);
        t = now_s();
        import_all(st, text, len, W5_UPDATES, W5_UPDATES, "W5_withdraw_batch");
        secs = now_s() - t;
        perf_mark("W5_withdraw_batch", 0);
        report("W5_withdraw_batch", W5_UPDATES, secs, cnt, 0);
        free(text);
        if (stop_after("W5_withdraw_batch"))
            goto out;
    }

    /* W6: erasure (crypto-shredding) of 1 000 distinct customers, one
     * ck_erase each; count = customers erased. */
    {
        long k = 0;
        uint32_t *er = pick_erasures(d.n, &k);
        unsigned long long cnt = 0;
        char ref[16];
        if (er == NULL)
            DIE("out of memory");
        perf_mark("W6_erase_txn", 1);
        t = now_s();
        for (long i = 0; i < k; i++) {
            snprintf(ref, sizeof ref, "%u", er[i]);
            ck_who who = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
            CK(st, ck_erase(NULL, st, &who, "art17-request", "bench"));
            bits[er[i] - 1] = ERASED;
            cnt++;
        }
        secs = now_s() - t;
        perf_mark("W6_erase_txn", 0);
        report("W6_erase_txn", k, secs, cnt, 0);
        er_all = er;
        er_k = k;
        if (stop_after("W6_erase_txn"))
            goto out;
    }

    /* The store's size after the peers' workloads, as they report theirs. */
    long long db_bytes = dir_bytes(dir, 1);

    /* Extra W7: single erasures (ck_erase, keyring scrub included), each
     * timed; the line gives their total, a # line their median. */
    if (er_k + W7_ERASURES <= d.n) {
        double ms[W7_ERASURES];
        char ref[16];
        perf_mark("W7_erase_one", 1);
        double total = 0;
        for (long i = 0; i < W7_ERASURES; i++) {
            uint32_t id = er_all[er_k + i];
            snprintf(ref, sizeof ref, "%u", id);
            ck_who who = {CK_BY_REF, ref, 0, NULL, NULL, NULL};
            t = now_s();
            CK(st, ck_erase(NULL, st, &who, "art17-request", "bench"));
            ms[i] = (now_s() - t) * 1e3;
            total += ms[i] / 1e3;
            bits[id - 1] = ERASED;
        }
        perf_mark("W7_erase_one", 0);
        report("W7_erase_one", W7_ERASURES, total, W7_ERASURES, 0);
        qsort(ms, W7_ERASURES, sizeof ms[0], cmp_double);
        printf("# W7_erase_one median_ms %.2f min_ms %.2f max_ms %.2f\n",
               (ms[W7_ERASURES / 2 - 1] + ms[W7_ERASURES / 2]) / 2, ms[0], ms[W7_ERASURES - 1]);
        if (stop_after("W7_erase_one"))
            goto out;
    }

    /* Extra W8: W8_ERASURES more customers in one ck_erase_many. */
    if (er_k + W7_ERASURES + W8_ERASURES <= d.n) {
        static char refs[W8_ERASURES][16];
        static ck_who who[W8_ERASURES];
        for (long i = 0; i < W8_ERASURES; i++) {
            uint32_t id = er_all[er_k + W7_ERASURES + i];
            snprintf(refs[i], sizeof refs[i], "%u", id);
            who[i] = (ck_who){CK_BY_REF, refs[i], 0, NULL, NULL, NULL};
            bits[id - 1] = ERASED;
        }
        uint64_t erased = 0;
        perf_mark("W8_erase_batch", 1);
        t = now_s();
        CK(st, ck_erase_many(&erased, st, who, W8_ERASURES, "art17-request", "bench", NULL, NULL));
        secs = now_s() - t;
        perf_mark("W8_erase_batch", 0);
        if (erased != W8_ERASURES)
            DIE("W8_erase_batch: %llu erased of %d", (unsigned long long)erased, W8_ERASURES);
        report("W8_erase_batch", W8_ERASURES, secs, erased, 0);
        if (stop_after("W8_erase_batch"))
            goto out;
    }

    /* Extras. W2 again with every release's audit entry fsync'ed before
     * it returns (reopened in CK_AUDIT_STRICT); after W5 and W6, so its
     * counts differ from W2's (an erased customer is CK_ENOTFOUND, and
     * releases nothing): checked against the data instead. */
    ck_close(st);
    st = store_open(dir, key_file, 0, CK_AUDIT_STRICT);
    if (strict_queries > 0)
        run_point(st, &d, bits, "W2_point_strict", strict_queries);
    if (stop_after("W2_point_strict"))
        goto out;
    /* The same releases from 8 threads on the handle: group commit. */
    if (strict_queries > 0)
        run_point_threads(st, &d, bits, "W2_point_strict_8t", strict_queries, 8);
    if (stop_after("W2_point_strict_8t"))
        goto out;

    /* W9: verify the whole audit chain. */
    {
        ck_audit_verify_result vr = CK_AUDIT_VERIFY_INIT;
        perf_mark("W9_audit_verify", 1);
        t = now_s();
        CK(st, ck_audit_verify(&vr, st, NULL));
        secs = now_s() - t;
        perf_mark("W9_audit_verify", 0);
        report("W9_audit_verify", (long)vr.entries, secs, (unsigned long long)vr.entries, 0);
        printf("# audit entries %llu in %u segment(s)\n", (unsigned long long)vr.entries,
               vr.segments);
    }

    /* Extra W10: compaction of the whole store (both files rewritten entry
     * by entry and renamed into place). */
    {
        long long before = dir_bytes(dir, 0);
        perf_mark("W10_compact", 1);
        t = now_s();
        CK(st, ck_compact(st, "bench"));
        secs = now_s() - t;
        perf_mark("W10_compact", 0);
        report("W10_compact", 1, secs, 1, 0);
        printf("# W10_compact store_bytes %lld -> %lld\n", before, dir_bytes(dir, 0));
    }
    ck_close(st);
    printf("# store_bytes_at_end %lld\n", dir_bytes(dir, 0));
    printf("# db_bytes %lld\n", db_bytes);
    st = NULL;
out:
    ck_close(st);
    fflush(stdout);
    if (g_perf_ctl != NULL)
        fclose(g_perf_ctl);
    if (g_perf_ack != NULL)
        fclose(g_perf_ack);
    if (unlink(key_file) != 0)
        DIE("cannot remove %s: %s", key_file, strerror(errno));
    free(bits);
    free(er_all);
    free(d.c);
    free(d.text);
    if (g_mismatch)
        fprintf(stderr, "ckstore-bench: some releases disagree with the data (see # check)\n");
    return 0;
}
