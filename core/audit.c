/*
 * audit.c - the tamper-evident audit log (DESIGN.md section 6, issue 5).
 *
 * Files: append-only segments "audit-NNNNNN.log" in the store directory,
 * mode 0600. A segment is a sequence of frames
 *
 *     u32 BE length | entry (msgpack map, `length` bytes) | chain hash (32)
 *
 * with h_i = BLAKE2b-256(key = AUDIT subkey, h_{i-1} || entry_i), h_0 = 32
 * zero bytes; the chain runs across segments (the first entry of segment
 * N+1 chains from the last of N). Sequence numbers start at 1 and have no
 * gap. A new segment is started once the active one has reached
 * segment_max bytes (64 MiB). docs/audit.md has the entry's keys.
 *
 * Writers. Inside a process, appenders queue their (already encoded)
 * entries; one of them - the leader - takes the whole queue, and under an
 * exclusive flock of the FIRST segment (a file that always exists, so it is
 * the lock for every segment) it:
 *   1. catches up with other processes: if the active segment grew since
 *      this process last wrote, it reads the new frames, checks their chain
 *      and adopts their sequence number and hash (and follows a roll to the
 *      next segment);
 *   2. rolls to a new segment if the active one is full;
 *   3. numbers and chains the batch and writes it with one write();
 *   4. releases the flock, then - if any entry of the batch is strict - runs
 *      one fdatasync shared by every waiter (group commit).
 * A batch of batched-mode entries only keeps the flock for a short lease
 * (LEASE_NS, from when it was taken): the batches that follow within it
 * skip the lock and the catch-up, which nobody else can have made
 * necessary, and still write() before they return. The next batch after
 * the lease, a strict batch, or the flusher (when the process goes quiet)
 * gives it back, so another process waits at most about LEASE_NS more.
 * A strict leader that finds fewer waiters than the last batch had waits a
 * little (at most half the last fsync's duration, 2 ms at most) for them,
 * so that tight loops of appenders do not fall into alternating small
 * batches. In batched mode a flusher thread fsyncs within audit_flush_ms of
 * the first unsynced write.
 *
 * A write that fails (or stops half-way) is undone with ftruncate under the
 * flock, so nothing half-written stays behind; a failed fsync, or a log
 * found damaged, makes every later append fail ("broken") - fail closed.
 *
 * Staging. Under a lease, a batch of batched-mode entries is not written
 * to the segment with its own write(): it is copied into the staging file
 * "audit-stage", a fixed-size file mapped shared (page cache, so it
 * outlives a crash of the process), and the staged frames reach the
 * segment with one write when the lease ends, when the staging file is
 * full, before a strict batch, a roll, an fsync or a read of the log by
 * this process, and at close. A write() per entry was about a third of the
 * cost of an audited release; a copy into pages that stay mapped and are
 * never fsync'ed costs a few per cent of it. The staging file:
 *
 *     page 0: "ckstage1" | u32 BE segment | u32 0 | u64 BE base | u64 BE len
 *     page 1...: `len` bytes of frames, which belong at offset `base` of
 *                `segment`
 *
 * Only the flock's holder stages, and it moves everything to the segment
 * before it gives the flock back, so `len` is 0 whenever the flock is
 * free - unless its holder died. The next process to take the flock (or
 * to open the store) then replays the staged frames that continue the
 * chain (part of them may already be in the segment, if the holder died
 * during the move) and counts any other staged bytes as torn. The frames
 * are copied before `len` grows, so a holder killed half-way through a
 * copy leaves nothing that counts. The staging file is never fsync'ed:
 * after a power loss it may hold anything, and only frames that verify
 * against the head of the log are replayed - what was staged in the last
 * audit_flush_ms may be lost, as in batched mode without staging. The
 * file is used only on file systems that overwrite allocated blocks in
 * place (ext4, XFS, tmpfs): on others a write to the mapping could meet a
 * full disk as SIGBUS, so every batch is written with write() there.
 *
 * Torn tail: at open, under the flock, a last frame that runs past the end
 * of the file (a crash during a write) is truncated and the repair logged
 * (action "recover"). A complete frame whose hash does not match is
 * tampering, which only verify reports.
 *
 * No global state: everything hangs off st->audit.
 */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HASH_BYTES       CK_AUDIT_HASH_BYTES
#define FRAME_OVERHEAD   (4u + HASH_BYTES)
#define SEGMENT_NO_MAX   999999u
#define READ_CHUNK       ((size_t)256 << 10)
#define GATHER_MAX_NS    2000000ull /* a strict leader waits at most 2 ms */
#define LEASE_NS         2000000ull /* batched writes keep the flock 2 ms */
#define SIGNING_KEY_FILE "audit-signing.key"
#define STAGE_FILE       CK_AUDIT_STAGE_FILE
#define STAGE_HDR        ((size_t)4096)      /* the header page */
#define STAGE_CAP        ((size_t)256 << 10) /* bytes of frames it holds */
#define STAGE_BYTES      (STAGE_HDR + STAGE_CAP)
#define ACTOR_SELF       "ckstore"

static const char CHECKPOINT_TAG[] = "ckstore-audit-checkpoint-v1";

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

/* An appender's entry waiting in the queue; lives on the appender's stack. */
typedef struct pending {
    struct pending *next;
    const ck_buf *enc; /* the encoded entry, seq left zero */
    size_t seq_off;    /* where the 8 bytes of seq go in enc */
    bool strict;
    /* results, set by the leader */
    bool done;
    int rc;
    uint64_t seq;
    uint8_t hash[HASH_BYTES];
    char msg[CK_ERRMSG_MAX];
} pending;

typedef struct ck_audit {
    pthread_mutex_t mu;       /* guards everything down to `stop` */
    pthread_cond_t done_cv;   /* a batch finished */
    pthread_cond_t leader_cv; /* an entry was queued (a gathering leader waits) */
    pthread_cond_t flush_cv;  /* the flusher: dirty, or stop */
    pending *q_head, *q_tail;
    size_t queued, queued_strict;
    bool leader;       /* a thread is writing a batch */
    size_t last_batch; /* strict entries in the last synced batch */
    uint64_t last_sync_ns;
    int broken; /* CK_OK, or why every append now fails */
    char broken_msg[CK_ERRMSG_MAX];
    bool dirty;        /* written, not yet fsync'ed */
    uint64_t dirty_ns; /* when `dirty` was set (monotonic) */
    /* The flock is held past a batch (the lease, since held_ns). Changed
     * under `mu` only: by the leader, in lead(), or by the flusher and
     * close while no leader runs. */
    bool held;
    uint64_t held_ns;
    uint64_t lease_ns; /* LEASE_NS (tests may change it) */
    bool stop;
    bool flusher_started;
    pthread_t flusher;
    int test_fail; /* a ck_audit_fail, read and reset atomically */

    /* Owned by the leader (or by open/close, when no leader can run). */
    pthread_rwlock_t fd_lock; /* fdatasync holds it shared; a segment switch
                                 holds it exclusive */
    int lock_fd;              /* segment 1, for flock */
    int fd;                   /* the active segment */
    unsigned seg_no;
    uint64_t size; /* bytes of the active segment this process has accounted for */
    uint64_t seq;  /* last sequence number */
    uint8_t head[HASH_BYTES];
    uint64_t segment_max;
    ck_buf wbuf;
    uint64_t recovered; /* torn bytes removed (at open or while catching up) */
    /* The staging file (-1 / NULL: not used). stage_len is this process's
     * bytes in it, 0 unless it holds the flock. Leader-owned, like fd. */
    int stage_fd;
    uint8_t *stage;
    size_t stage_len;
    bool rdonly;
    bool made_mu, made_cv1, made_cv2, made_cv3, made_rw;
} ck_audit;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timespec mono_deadline(uint64_t ns_from_now)
{
    uint64_t t = mono_ns() + ns_from_now;
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    return ts;
}

static void segment_name(char out[CK_AUDIT_SEGMENT_NAME_MAX], unsigned no)
{
    snprintf(out, CK_AUDIT_SEGMENT_NAME_MAX, "audit-%06u.log", no);
}

static char *segment_path(const ck_store *st, unsigned no)
{
    char name[CK_AUDIT_SEGMENT_NAME_MAX];
    segment_name(name, no);
    return ck_mem__path_join(st->dir, name);
}

/* Parse "audit-NNNNNN.log" (exactly six digits); 0 if it is not one. */
static unsigned segment_no_of(const char *name)
{
    if (strlen(name) != 16 || memcmp(name, "audit-", 6) != 0 || memcmp(name + 12, ".log", 4) != 0)
        return 0;
    unsigned n = 0;
    for (int i = 6; i < 12; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        n = n * 10u + (unsigned)(name[i] - '0');
    }
    return n;
}

/* The highest segment number in the store directory (0: none). */
static int segment_max_no(ck_store *st, unsigned *out)
{
    *out = 0;
    DIR *d = opendir(st->dir);
    if (d == NULL)
        return ck_err__errno(st, errno, "cannot list the store directory", st->dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned no = segment_no_of(de->d_name);
        if (no > *out)
            *out = no;
    }
    closedir(d);
    return CK_OK;
}

static void chain_hash(uint8_t out[HASH_BYTES], const ck_store *st, const uint8_t prev[HASH_BYTES],
                       const uint8_t *entry, size_t n)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, ck_store__subkey(st, CK_SUBKEY_AUDIT), CK_KEY_BYTES, HASH_BYTES);
    crypto_generichash_update(&h, prev, HASH_BYTES);
    crypto_generichash_update(&h, entry, n);
    crypto_generichash_final(&h, out, HASH_BYTES);
}

static int sync_dir(ck_store *st)
{
    int fd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int rc = ck_err__errno(st, errno, "cannot sync the store directory", st->dir);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    close(fd);
    return CK_OK;
}

static int lock_ex(int fd)
{
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Character sets                                                           */
/* ------------------------------------------------------------------------ */

typedef enum cset { CSET_NAME, CSET_TEXT, CSET_DVAL } cset;

static size_t cset_max(cset c)
{
    return c == CSET_NAME   ? CK_AUDIT_NAME_MAX
           : c == CSET_TEXT ? CK_AUDIT_TEXT_MAX
                            : CK_AUDIT_DVAL_MAX;
}

static bool in_cset(const char *s, size_t n, cset c)
{
    if (n == 0 || n > cset_max(c))
        return false;
    if (c == CSET_TEXT) {
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch < 0x20 || ch == 0x7f)
                return false;
        }
        return ck_codec__utf8_valid(s, n);
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == ':' || ch == '-';
        if (!ok && c == CSET_DVAL)
            ok = ch == '/' || ch == '+' || ch == '=';
        if (!ok)
            return false;
    }
    return true;
}

static bool cstr_ok(const char *s, cset c)
{
    return s != NULL && in_cset(s, strnlen(s, cset_max(c) + 1), c);
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

/* Check an entry against the character sets and limits. The message names
 * the part that is wrong, never its content. */
static int check_entry(ck_store *st, const ck_audit_entry *e)
{
    if (e == NULL)
        return ck_err__set(st, CK_EINVAL, "audit entry: NULL");
    if (!cstr_ok(e->actor, CSET_TEXT))
        return ck_err__set(st, CK_EINVAL, "audit entry: actor missing or not valid text");
    if (!cstr_ok(e->action, CSET_NAME))
        return ck_err__set(st, CK_EINVAL, "audit entry: action missing or not a valid name");
    if (e->purpose != NULL && !cstr_ok(e->purpose, CSET_NAME))
        return ck_err__set(st, CK_EINVAL, "audit entry: purpose is not a valid name");
    if (e->recipient != NULL && !cstr_ok(e->recipient, CSET_TEXT))
        return ck_err__set(st, CK_EINVAL, "audit entry: recipient is not valid text");
    if (e->n_released > CK_AUDIT_LIST_MAX || e->n_withheld > CK_AUDIT_LIST_MAX ||
        e->n_detail > CK_AUDIT_DETAIL_MAX)
        return ck_err__set(st, CK_ELIMIT, "audit entry: too many fields or details");
    if ((e->n_released > 0 && e->released == NULL) || (e->n_withheld > 0 && e->withheld == NULL) ||
        (e->n_detail > 0 && e->detail == NULL))
        return ck_err__set(st, CK_EINVAL, "audit entry: NULL array with a count");
    for (size_t i = 0; i < e->n_released; i++)
        if (!cstr_ok(e->released[i], CSET_NAME))
            return ck_err__set(st, CK_EINVAL, "audit entry: released field %zu is not a name", i);
    for (size_t i = 0; i < e->n_withheld; i++)
        if (!cstr_ok(e->withheld[i].field, CSET_NAME) || !cstr_ok(e->withheld[i].reason, CSET_NAME))
            return ck_err__set(st, CK_EINVAL,
                               "audit entry: withheld item %zu is not a name and a reason", i);
    for (size_t i = 0; i < e->n_detail; i++) {
        if (!cstr_ok(e->detail[i].key, CSET_NAME))
            return ck_err__set(st, CK_EINVAL, "audit entry: detail key %zu is not a name", i);
        if (e->detail[i].str != NULL && !cstr_ok(e->detail[i].str, CSET_DVAL))
            return ck_err__set(st, CK_EINVAL,
                               "audit entry: detail %zu holds a string outside [A-Za-z0-9_.:/+=-] "
                               "(values are never logged)",
                               i);
    }
    return CK_OK;
}

/* Encode a checked entry. The seq is written as a fixed-width uint 64
 * (0xcf + 8 bytes, left zero) at *seq_off, for the leader to fill in. */
static int encode_entry(ck_buf *out, size_t *seq_off, const ck_audit_entry *e, uint64_t time_ms)
{
    int rc;
    uint32_t keys = 4;
    keys += e->purpose != NULL;
    keys += e->recipient != NULL;
    keys += e->subject != NULL;
    keys += e->n_released > 0;
    keys += e->n_withheld > 0;
    keys += e->n_detail > 0;

    ck_buf__reset(out);
    ck_mp_writer w;
    ck_mp_writer__init(&w, out);
    ck_mp_writer__map(&w, keys);
    ck_mp_writer__cstr(&w, "seq");
    CK_GUARD(w.rc);
    static const uint8_t u64_zero[9] = {0xcf};
    *seq_off = out->len + 1;
    CK_GUARD(ck_buf__append(out, u64_zero, sizeof u64_zero));
    ck_mp_writer__cstr(&w, "time");
    ck_mp_writer__u64(&w, time_ms);
    ck_mp_writer__cstr(&w, "actor");
    ck_mp_writer__cstr(&w, e->actor);
    ck_mp_writer__cstr(&w, "action");
    ck_mp_writer__cstr(&w, e->action);
    if (e->purpose != NULL) {
        ck_mp_writer__cstr(&w, "purpose");
        ck_mp_writer__cstr(&w, e->purpose);
    }
    if (e->recipient != NULL) {
        ck_mp_writer__cstr(&w, "recipient");
        ck_mp_writer__cstr(&w, e->recipient);
    }
    if (e->subject != NULL) {
        ck_mp_writer__cstr(&w, "subject");
        ck_mp_writer__bin(&w, e->subject, CK_AUDIT_PSEUDONYM_BYTES);
    }
    if (e->n_released > 0) {
        ck_mp_writer__cstr(&w, "released");
        ck_mp_writer__array(&w, (uint32_t)e->n_released);
        for (size_t i = 0; i < e->n_released; i++)
            ck_mp_writer__cstr(&w, e->released[i]);
    }
    if (e->n_withheld > 0) {
        ck_mp_writer__cstr(&w, "withheld");
        ck_mp_writer__map(&w, (uint32_t)e->n_withheld);
        for (size_t i = 0; i < e->n_withheld; i++) {
            ck_mp_writer__cstr(&w, e->withheld[i].field);
            ck_mp_writer__cstr(&w, e->withheld[i].reason);
        }
    }
    if (e->n_detail > 0) {
        ck_mp_writer__cstr(&w, "detail");
        ck_mp_writer__map(&w, (uint32_t)e->n_detail);
        for (size_t i = 0; i < e->n_detail; i++) {
            ck_mp_writer__cstr(&w, e->detail[i].key);
            if (e->detail[i].str != NULL)
                ck_mp_writer__cstr(&w, e->detail[i].str);
            else
                ck_mp_writer__i64(&w, e->detail[i].num);
        }
    }
    CK_GUARD(w.rc);
    CK_ENSURE(out->len <= CK_AUDIT_ENTRY_MAX, CK_ELIMIT);
    rc = CK_OK;
cleanup:
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

static int dec_str(ck_mp *r, ck_arena *a, cset c, const char **out)
{
    const char *s;
    uint32_t n;
    CK_TRY(ck_mp__str(r, &s, &n));
    if (!in_cset(s, n, c))
        return CK_EFORMAT;
    *out = ck_arena__strndup(a, s, n);
    return *out != NULL ? CK_OK : CK_ENOMEM;
}

enum {
    K_SEQ = 1u << 0,
    K_TIME = 1u << 1,
    K_ACTOR = 1u << 2,
    K_ACTION = 1u << 3,
    K_PURPOSE = 1u << 4,
    K_RECIPIENT = 1u << 5,
    K_SUBJECT = 1u << 6,
    K_RELEASED = 1u << 7,
    K_WITHHELD = 1u << 8,
    K_DETAIL = 1u << 9
};

static int dec_field(ck_audit_record *out, ck_mp *r, ck_arena *a, const char *k, uint32_t kl,
                     unsigned *seen)
{
    static const struct {
        const char *name;
        unsigned bit;
    } keys[] = {{"seq", K_SEQ},         {"time", K_TIME},         {"actor", K_ACTOR},
                {"action", K_ACTION},   {"purpose", K_PURPOSE},   {"recipient", K_RECIPIENT},
                {"subject", K_SUBJECT}, {"released", K_RELEASED}, {"withheld", K_WITHHELD},
                {"detail", K_DETAIL}};
    unsigned bit = 0;
    for (size_t i = 0; i < CK_ARRAY_LEN(keys); i++)
        if (ck_mp__str_eq(k, kl, keys[i].name))
            bit = keys[i].bit;
    if (bit == 0)
        return ck_mp__skip(r); /* a key of a later version */
    if (*seen & bit)
        return CK_EFORMAT; /* duplicate key */
    *seen |= bit;

    uint32_t n;
    switch (bit) {
    case K_SEQ:
        CK_TRY(ck_mp__u64(r, &out->seq));
        return out->seq == 0 ? CK_EFORMAT : CK_OK;
    case K_TIME:
        return ck_mp__u64(r, &out->time_ms);
    case K_ACTOR:
        return dec_str(r, a, CSET_TEXT, &out->actor);
    case K_ACTION:
        return dec_str(r, a, CSET_NAME, &out->action);
    case K_PURPOSE:
        return dec_str(r, a, CSET_NAME, &out->purpose);
    case K_RECIPIENT:
        return dec_str(r, a, CSET_TEXT, &out->recipient);
    case K_SUBJECT: {
        const uint8_t *b;
        CK_TRY(ck_mp__bin(r, &b, &n));
        if (n != CK_AUDIT_PSEUDONYM_BYTES)
            return CK_EFORMAT;
        out->subject = ck_arena__dup(a, b, n);
        return out->subject == NULL ? CK_ENOMEM : CK_OK;
    }
    case K_RELEASED: {
        CK_TRY(ck_mp__array(r, &n));
        if (n > CK_AUDIT_LIST_MAX)
            return CK_EFORMAT;
        const char **names = ck_arena__alloc(a, (n > 0 ? n : 1) * sizeof *names);
        if (names == NULL)
            return CK_ENOMEM;
        for (uint32_t i = 0; i < n; i++)
            CK_TRY(dec_str(r, a, CSET_NAME, &names[i]));
        out->released = names;
        out->n_released = n;
        return CK_OK;
    }
    case K_WITHHELD: {
        CK_TRY(ck_mp__map(r, &n));
        if (n > CK_AUDIT_LIST_MAX)
            return CK_EFORMAT;
        ck_audit_withheld_field *w = ck_arena__alloc(a, (n > 0 ? n : 1) * sizeof *w);
        if (w == NULL)
            return CK_ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
            CK_TRY(dec_str(r, a, CSET_NAME, &w[i].field));
            CK_TRY(dec_str(r, a, CSET_NAME, &w[i].reason));
        }
        out->withheld = w;
        out->n_withheld = n;
        return CK_OK;
    }
    default: { /* K_DETAIL */
        CK_TRY(ck_mp__map(r, &n));
        if (n > CK_AUDIT_DETAIL_MAX)
            return CK_EFORMAT;
        ck_audit_detail_item *d = ck_arena__alloc(a, (n > 0 ? n : 1) * sizeof *d);
        if (d == NULL)
            return CK_ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
            ck_mp_kind kind;
            CK_TRY(dec_str(r, a, CSET_NAME, &d[i].key));
            CK_TRY(ck_mp__peek(r, &kind));
            d[i].str = NULL;
            d[i].num = 0;
            if (kind == CK_MP_STR)
                CK_TRY(dec_str(r, a, CSET_DVAL, &d[i].str));
            else
                CK_TRY(ck_mp__i64(r, &d[i].num));
        }
        out->detail = d;
        out->n_detail = n;
        return CK_OK;
    }
    }
}

int ck_audit__decode(ck_audit_record *out, const uint8_t *p, size_t n, ck_arena *arena)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || n > CK_AUDIT_ENTRY_MAX)
        return CK_EFORMAT;
    ck_mp r;
    ck_mp__init(&r, p, n);
    uint32_t count;
    unsigned seen = 0;
    int rc = ck_mp__map(&r, &count);
    for (uint32_t i = 0; rc == CK_OK && i < count; i++) {
        const char *k;
        uint32_t kl;
        rc = ck_mp__str(&r, &k, &kl);
        if (rc == CK_OK)
            rc = dec_field(out, &r, arena, k, kl, &seen);
    }
    if (rc == CK_OK && (ck_mp__left(&r) != 0 || (seen & (K_SEQ | K_TIME | K_ACTOR | K_ACTION)) !=
                                                    (K_SEQ | K_TIME | K_ACTOR | K_ACTION)))
        rc = CK_EFORMAT;
    if (rc != CK_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading frames                                                           */
/* ------------------------------------------------------------------------ */

typedef struct frame_reader {
    int fd;
    ck_buf buf;    /* file bytes [base, base + buf.len) */
    size_t pos;    /* next frame within buf */
    uint64_t base; /* file offset of buf.p[0] */
    bool eof;
} frame_reader;

typedef struct frame {
    uint64_t offset;
    const uint8_t *entry;
    size_t len;
    const uint8_t *hash;
} frame;

typedef enum fr_kind { FR_FRAME, FR_END, FR_TORN, FR_BADLEN, FR_ERR } fr_kind;

static void fr_init(frame_reader *r, int fd, uint64_t from)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->base = from;
}

static void fr_free(frame_reader *r)
{
    ck_buf__free(&r->buf);
}

/* Is an incomplete last frame (`avail` bytes at p) really a write cut
 * short? An entry is one msgpack object, which delimits itself: if a whole
 * object and a whole hash follow the length field, the frame was complete
 * and its length field was changed - damage, not a crash. (Without this, a
 * length field altered near the end of the log would make the frames after
 * it look like a torn tail.) */
static bool torn_is_real(const uint8_t *p, size_t avail)
{
    if (avail < 4)
        return true;
    ck_mp r;
    ck_mp__init(&r, p + 4, avail - 4);
    if (ck_mp__skip(&r) != CK_OK)
        return true; /* the entry itself is cut */
    size_t obj = avail - 4 - ck_mp__left(&r);
    return obj + HASH_BYTES > avail - 4;
}

/* The next frame. FR_TORN: the bytes left (f->len of them, from f->offset)
 * are an incomplete frame at the end of the file. FR_BADLEN: the length at
 * f->offset is impossible. FR_ERR: an I/O error (errno set) or ENOMEM. */
static fr_kind fr_next(frame_reader *r, frame *f)
{
    for (;;) {
        size_t avail = r->buf.len - r->pos;
        size_t need = 4;
        f->offset = r->base + r->pos;
        if (avail >= 4) {
            uint32_t len = ck_be32_get(r->buf.p + r->pos);
            if (len == 0 || len > CK_AUDIT_ENTRY_MAX)
                return FR_BADLEN;
            need = FRAME_OVERHEAD + len;
            if (avail >= need) {
                f->entry = r->buf.p + r->pos + 4;
                f->len = len;
                f->hash = f->entry + len;
                r->pos += need;
                return FR_FRAME;
            }
        }
        if (r->eof) {
            f->len = avail;
            if (avail == 0)
                return FR_END;
            return torn_is_real(r->buf.p + r->pos, avail) ? FR_TORN : FR_BADLEN;
        }
        /* Refill: drop the consumed bytes, read at least a chunk. */
        if (r->pos > 0) {
            memmove(r->buf.p, r->buf.p + r->pos, avail);
            r->base += r->pos;
            r->buf.len = avail;
            r->pos = 0;
        }
        size_t want = need > READ_CHUNK ? need : READ_CHUNK;
        if (ck_buf__reserve(&r->buf, want) != CK_OK) {
            errno = ENOMEM;
            return FR_ERR;
        }
        ssize_t n = pread(r->fd, r->buf.p + r->buf.len, r->buf.cap - r->buf.len,
                          (off_t)(r->base + r->buf.len));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return FR_ERR;
        if (n == 0)
            r->eof = true;
        r->buf.len += (size_t)n;
    }
}

/* Sequence number of an encoded entry, without decoding the rest. */
static int entry_seq(const uint8_t *p, size_t n, uint64_t *seq, uint64_t *time_ms)
{
    ck_audit_record rec;
    ck_arena a = CK_ARENA_INIT;
    int rc = ck_audit__decode(&rec, p, n, &a);
    *seq = rec.seq;
    if (time_ms != NULL)
        *time_ms = rec.time_ms;
    ck_arena__free(&a);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The write side: catching up, rolling, writing a batch                     */
/* ------------------------------------------------------------------------ */

static void set_broken(ck_audit *a, int rc, const char *msg)
{
    pthread_mutex_lock(&a->mu);
    if (a->broken == CK_OK) {
        a->broken = rc;
        snprintf(a->broken_msg, sizeof a->broken_msg, "%s", msg);
    }
    pthread_mutex_unlock(&a->mu);
}

/* Switch the active segment to `fd` / `no` (the caller owns the old fd). */
static void switch_segment(ck_audit *a, int fd, unsigned no)
{
    pthread_rwlock_wrlock(&a->fd_lock);
    int old = a->fd;
    a->fd = fd;
    a->seg_no = no;
    a->size = 0;
    pthread_rwlock_unlock(&a->fd_lock);
    if (old >= 0)
        close(old);
}

/* The test hook: true (once) when the next failure armed is `what`. */
static bool take_fail(ck_audit *a, ck_audit_fail what)
{
    int want = (int)what;
    return __atomic_compare_exchange_n(&a->test_fail, &want, (int)CK_AUDIT_FAIL_NONE, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static int sync_fd(ck_audit *a)
{
    if (take_fail(a, CK_AUDIT_FAIL_FSYNC) || ck_fault__hit("audit_fsync")) {
        errno = EIO;
        return -1;
    }
    pthread_rwlock_rdlock(&a->fd_lock);
    int r = fdatasync(a->fd);
    pthread_rwlock_unlock(&a->fd_lock);
    return r;
}

/*
 * Under the flock: adopt what other processes appended since this one last
 * wrote - frames at the end of the active segment, and following segments.
 * Their chain is checked; an incomplete frame at the very end is a torn
 * write of a crashed process (every writer holds the flock while writing)
 * and is truncated. `torn` receives the bytes removed.
 */
static int catch_up_log(ck_store *st, uint64_t *torn)
{
    ck_audit *a = st->audit;
    int rc = CK_OK;
    char name[CK_AUDIT_SEGMENT_NAME_MAX];
    *torn = 0;
    for (;;) {
        struct stat sb;
        segment_name(name, a->seg_no);
        if (fstat(a->fd, &sb) != 0)
            return ck_err__errno(st, errno, "cannot stat audit segment", name);
        if ((uint64_t)sb.st_size < a->size)
            return ck_err__set(st, CK_EINTEGRITY,
                               "audit segment %s shrank under this process: the log was cut", name);
        if ((uint64_t)sb.st_size > a->size) {
            frame_reader r;
            frame f;
            fr_kind k;
            fr_init(&r, a->fd, a->size);
            while ((k = fr_next(&r, &f)) == FR_FRAME) {
                uint64_t seq;
                uint8_t h[HASH_BYTES];
                int src = entry_seq(f.entry, f.len, &seq, NULL);
                if (src == CK_ENOMEM) {
                    fr_free(&r);
                    return ck_err__set(st, CK_ENOMEM, "out of memory while reading the audit log");
                }
                if (src != CK_OK || seq != a->seq + 1) {
                    k = FR_BADLEN;
                    break;
                }
                chain_hash(h, st, a->head, f.entry, f.len);
                if (sodium_memcmp(h, f.hash, HASH_BYTES) != 0) {
                    k = FR_BADLEN;
                    break;
                }
                a->seq = seq;
                memcpy(a->head, h, HASH_BYTES);
                a->size = f.offset + FRAME_OVERHEAD + f.len;
            }
            fr_free(&r);
            if (k == FR_ERR)
                return ck_err__errno(st, errno, "cannot read audit segment", name);
            if (k == FR_BADLEN)
                return ck_err__set(st, CK_EINTEGRITY,
                                   "audit segment %s: the entry at offset %llu written by another "
                                   "process does not verify",
                                   name, (unsigned long long)f.offset);
            if (k == FR_TORN) {
                if (ftruncate(a->fd, (off_t)f.offset) != 0)
                    return ck_err__errno(st, errno, "cannot truncate a torn audit entry in", name);
                *torn += f.len;
                a->size = f.offset;
            }
        }
        if (a->size < a->segment_max)
            return rc;
        /* Full: another process may have rolled to the next segment. */
        if (a->seg_no >= SEGMENT_NO_MAX)
            return ck_err__set(st, CK_ELIMIT, "the audit log has reached its last segment");
        char *path = segment_path(st, a->seg_no + 1);
        if (path == NULL)
            return ck_err__set(st, CK_ENOMEM, "out of memory");
        int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        int err = errno;
        ck_mem__free(path);
        if (fd < 0 && err == ENOENT)
            return CK_OK;
        if (fd < 0)
            return ck_err__errno(st, err, "cannot open the next audit segment", name);
        switch_segment(a, fd, a->seg_no + 1);
    }
}

/* Under the flock, with the active segment full: make the next one. */
static int roll(ck_store *st)
{
    ck_audit *a = st->audit;
    char name[CK_AUDIT_SEGMENT_NAME_MAX];
    segment_name(name, a->seg_no + 1);
    /* What the old segment holds must be durable before entries that chain
     * from it are written elsewhere. */
    if (sync_fd(a) != 0)
        return ck_err__errno(st, errno, "cannot sync audit segment before rolling", name);
    char *path = segment_path(st, a->seg_no + 1);
    if (path == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int err = errno;
    ck_mem__free(path);
    if (fd < 0)
        return ck_err__errno(st, err, "cannot create audit segment", name);
    switch_segment(a, fd, a->seg_no + 1);
    return sync_dir(st);
}

static int write_all(ck_audit *a, const uint8_t *p, size_t n)
{
    if (take_fail(a, CK_AUDIT_FAIL_WRITE) || ck_fault__hit("audit_write")) {
        errno = EIO;
        return -1;
    }
    if (take_fail(a, CK_AUDIT_FAIL_PARTIAL)) {
        if (write(a->fd, p, n / 2) < 0)
            return -1;
        errno = ENOSPC;
        return -1;
    }
    while (n > 0) {
        ssize_t w = write(a->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Append `n` bytes to the active segment, at a->size (under the flock).
 * Returns 0; or -1 (errno set) with the segment cut back to a->size, so
 * that no half frame stays behind; or -2 (errno set) if even the cut
 * failed. Sets no message: the flusher calls it too. */
static int log_write(ck_audit *a, const uint8_t *p, size_t n)
{
    if (write_all(a, p, n) != 0) {
        int err = errno;
        if (ftruncate(a->fd, (off_t)a->size) != 0)
            return -2;
        errno = err;
        return -1;
    }
    a->size += n;
    return 0;
}

/* Set the message (and, for a failed cut, the broken state) of a failed
 * log_write. */
static int log_write_error(ck_store *st, int r, const char *what)
{
    ck_audit *a = st->audit;
    char name[CK_AUDIT_SEGMENT_NAME_MAX];
    segment_name(name, a->seg_no); /* for the message only: not per batch */
    if (r == -2) {
        int rc = ck_err__errno(st, errno, "cannot undo a failed audit write in", name);
        set_broken(a, rc, ck_err__get(st));
        return rc;
    }
    return ck_err__errno(st, errno, what, name);
}

/* ------------------------------------------------------------------------ */
/* The staging file                                                         */
/* ------------------------------------------------------------------------ */

static const uint8_t STAGE_MAGIC[8] = {'c', 'k', 's', 't', 'a', 'g', 'e', '1'};

/* The header's `len`: one aligned 8-byte store, after the frames it
 * covers. */
static uint64_t stage_get_len(const ck_audit *a)
{
    uint64_t v = __atomic_load_n((const uint64_t *)(const void *)(a->stage + 24), __ATOMIC_ACQUIRE);
    return ck_be64_get((const uint8_t *)&v);
}

static void stage_set_len(ck_audit *a, uint64_t len)
{
    uint64_t v;
    ck_be64_put((uint8_t *)&v, len);
    __atomic_store_n((uint64_t *)(void *)(a->stage + 24), v, __ATOMIC_RELEASE);
}

/* File systems that overwrite allocated blocks in place: a store into the
 * mapping of an allocated block cannot meet a full disk. */
static bool stage_fs_ok(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0)
        return false;
    switch ((unsigned long)sf.f_type) {
    case 0xEF53ul:     /* ext2, ext3, ext4 */
    case 0x58465342ul: /* XFS */
    case 0x01021994ul: /* tmpfs */
        return true;
    default:
        return false;
    }
}

/* Open (creating it if need be) and map the staging file of a writable
 * handle. On a file system where it cannot be used, staging stays off. */
static int stage_open(ck_store *st)
{
    ck_audit *a = st->audit;
    int rc;
    char *path = ck_mem__path_join(st->dir, STAGE_FILE);
    if (path == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    int err = errno;
    ck_mem__free(path);
    if (fd < 0)
        return ck_err__errno(st, err, "cannot open the audit staging file", STAGE_FILE);
    if (!stage_fs_ok(fd)) {
        close(fd);
        return CK_OK;
    }
    struct stat sb;
    CK_ENSURE(fstat(fd, &sb) == 0,
              ck_err__errno(st, errno, "cannot stat the audit staging file", STAGE_FILE));
    CK_ENSURE(S_ISREG(sb.st_mode),
              ck_err__set(st, CK_EINTEGRITY, "%s is not a regular file", STAGE_FILE));
    if ((uint64_t)sb.st_size < STAGE_BYTES) {
        /* Allocated, not sparse: a store into a hole could meet a full disk. */
        err = posix_fallocate(fd, 0, (off_t)STAGE_BYTES);
        CK_ENSURE(err == 0,
                  ck_err__errno(st, err, "cannot allocate the audit staging file", STAGE_FILE));
    }
    void *m = mmap(NULL, STAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CK_ENSURE(m != MAP_FAILED,
              ck_err__errno(st, errno, "cannot map the audit staging file", STAGE_FILE));
    a->stage = m;
    a->stage_fd = fd;
    return CK_OK;
cleanup:
    close(fd);
    return rc;
}

/* Stage `n` bytes of frames (leader, under the flock). 0, or -1 with errno
 * set and nothing staged. */
static int stage_put(ck_audit *a, const uint8_t *p, size_t n)
{
    if (take_fail(a, CK_AUDIT_FAIL_WRITE) || ck_fault__hit("audit_stage")) {
        errno = EIO;
        return -1;
    }
    if (a->stage_len == 0) {
        memcpy(a->stage, STAGE_MAGIC, sizeof STAGE_MAGIC);
        ck_be32_put(a->stage + 8, a->seg_no);
        memset(a->stage + 12, 0, 4);
        ck_be64_put(a->stage + 16, a->size);
    }
    bool partial = take_fail(a, CK_AUDIT_FAIL_PARTIAL);
    memcpy(a->stage + STAGE_HDR + a->stage_len, p, partial ? n / 2 : n);
    if (partial) {
        errno = ENOSPC;
        return -1;
    }
    a->stage_len += n;
    stage_set_len(a, a->stage_len); /* a release store: after the frames */
    return 0;
}

/* Move the staged frames to the segment (under the flock, a->mu not
 * held). 0; or -1 (errno set): the log is then broken - the frames'
 * callers have their answers, so the frames stay staged for the next
 * holder and this handle appends no more. Sets no message on the handle:
 * the flusher calls it too. */
static int stage_move(ck_audit *a)
{
    if (a->stage_len == 0)
        return 0;
    if (log_write(a, a->stage + STAGE_HDR, a->stage_len) != 0) {
        int err = errno;
        char msg[CK_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "cannot move staged audit entries to the log: %s", strerror(err));
        set_broken(a, err == ENOSPC || err == EDQUOT ? CK_ENOSPC : CK_EIO, msg);
        errno = err;
        return -1;
    }
    a->stage_len = 0;
    stage_set_len(a, 0);
    return 0;
}

/* The handle's broken state as its error. */
static int broken_error(ck_store *st)
{
    ck_audit *a = st->audit;
    char msg[CK_ERRMSG_MAX];
    pthread_mutex_lock(&a->mu);
    int rc = a->broken;
    snprintf(msg, sizeof msg, "%s", a->broken_msg);
    pthread_mutex_unlock(&a->mu);
    return ck_err__set(st, rc, "%s", msg);
}

/* stage_move for a leader, with the handle's message set on failure. */
static int stage_flush_or_break(ck_store *st)
{
    return stage_move(st->audit) == 0 ? CK_OK : broken_error(st);
}

/*
 * Under the flock, with the log caught up: replay the frames that a holder
 * which died left staged. Those already in the segment (it died while
 * moving them) are skipped; those that continue the chain are written; the
 * other staged bytes are added to *torn.
 */
static int stage_recover(ck_store *st, uint64_t *torn)
{
    ck_audit *a = st->audit;
    if (a->stage == NULL)
        return CK_OK;
    uint64_t len = stage_get_len(a);
    if (len == 0)
        return CK_OK;
    uint64_t base = ck_be64_get(a->stage + 16), skip = 0, keep = 0;
    bool usable = memcmp(a->stage, STAGE_MAGIC, sizeof STAGE_MAGIC) == 0 && len <= STAGE_CAP &&
                  ck_be32_get(a->stage + 8) == a->seg_no && base <= a->size &&
                  a->size - base <= len;
    if (usable) {
        skip = a->size - base;
        const uint8_t *p = a->stage + STAGE_HDR + skip;
        size_t left = (size_t)(len - skip);
        uint64_t seq = a->seq;
        uint8_t head[HASH_BYTES];
        memcpy(head, a->head, HASH_BYTES);
        while (left - keep >= FRAME_OVERHEAD) {
            uint32_t fl = ck_be32_get(p + keep);
            if (fl == 0 || fl > CK_AUDIT_ENTRY_MAX || FRAME_OVERHEAD + fl > left - keep)
                break;
            const uint8_t *e = p + keep + 4;
            uint64_t s;
            uint8_t h[HASH_BYTES];
            int src = entry_seq(e, fl, &s, NULL);
            if (src == CK_ENOMEM)
                return ck_err__set(st, CK_ENOMEM, "out of memory while reading the audit log");
            if (src != CK_OK || s != seq + 1)
                break;
            chain_hash(h, st, head, e, fl);
            if (sodium_memcmp(h, e + fl, HASH_BYTES) != 0)
                break;
            seq = s;
            memcpy(head, h, HASH_BYTES);
            keep += FRAME_OVERHEAD + fl;
        }
        if (keep > 0) {
            int r = log_write(a, p, (size_t)keep);
            if (r != 0) /* kept staged: the next holder tries again */
                return log_write_error(st, r, "cannot replay staged audit entries into");
            a->seq = seq;
            memcpy(a->head, head, HASH_BYTES);
        }
    }
    *torn += len - skip - keep;
    stage_set_len(a, 0);
    return CK_OK;
}

/* ------------------------------------------------------------------------ */
/* Writing a batch                                                          */
/* ------------------------------------------------------------------------ */

/* Number and chain the entries of `batch` into a->wbuf (leader only).
 * Fills every pending's seq and hash, and *seq / head with the new head,
 * which the caller adopts once the bytes are written or staged. */
static int assemble(ck_store *st, pending *batch, uint64_t *seq, uint8_t head[HASH_BYTES])
{
    ck_audit *a = st->audit;
    int rc;
    *seq = a->seq;
    memcpy(head, a->head, HASH_BYTES);
    ck_buf__reset(&a->wbuf);
    for (pending *p = batch; p != NULL; p = p->next) {
        uint8_t hdr[4];
        ++*seq;
        ck_be64_put(p->enc->p + p->seq_off, *seq);
        ck_be32_put(hdr, (uint32_t)p->enc->len);
        chain_hash(head, st, head, p->enc->p, p->enc->len);
        rc = ck_buf__append(&a->wbuf, hdr, sizeof hdr);
        if (rc == CK_OK)
            rc = ck_buf__append(&a->wbuf, p->enc->p, p->enc->len);
        if (rc == CK_OK)
            rc = ck_buf__append(&a->wbuf, head, HASH_BYTES);
        /* The leader hands its message to every waiter: say why. */
        if (rc != CK_OK)
            return ck_err__set(st, rc, "cannot assemble a batch of audit entries");
        p->seq = *seq;
        memcpy(p->hash, head, HASH_BYTES);
    }
    return CK_OK;
}

/* Under the flock: catch up with the log, then replay what a dead holder
 * left staged. */
static int catch_up(ck_store *st, uint64_t *torn)
{
    CK_TRY(catch_up_log(st, torn));
    return stage_recover(st, torn);
}

/*
 * Write a batch under the flock; fsync if `sync`. `held` says whether this
 * process still holds the flock from an earlier batch (its lease, taken at
 * *held_ns); on return it says whether it still does - kept for a batch
 * that needs no fsync, while the lease lasts. Such a batch is staged when
 * it fits in the staging file; any other batch is written after the
 * staged frames, which come before it in the chain.
 */
static int write_batch(ck_store *st, pending *batch, bool sync, uint64_t *torn, bool *held,
                       uint64_t *held_ns)
{
    ck_audit *a = st->audit;
    int rc;
    bool locked = *held;
    char name[CK_AUDIT_SEGMENT_NAME_MAX];
    uint64_t seq;
    uint8_t head[HASH_BYTES];
    *torn = 0;

    /* Under a lease nobody else can have written since the last batch;
     * otherwise take the flock and adopt what others wrote. */
    if (!locked) {
        CK_ENSURE(lock_ex(a->lock_fd) == 0,
                  ck_err__errno(st, errno, "cannot lock the audit log", CK_AUDIT_FIRST_SEGMENT));
        locked = true;
        *held_ns = mono_ns();
        rc = catch_up(st, torn);
        if (rc == CK_EINTEGRITY)
            set_broken(a, rc, ck_err__get(st));
        CK_GUARD(rc);
    }
    if (a->size + a->stage_len >= a->segment_max) {
        CK_GUARD(stage_flush_or_break(st));
        CK_GUARD(roll(st));
    }
    CK_GUARD(assemble(st, batch, &seq, head));
    bool keep = !sync && mono_ns() - *held_ns < a->lease_ns;
    if (keep && a->stage != NULL && a->wbuf.len <= STAGE_CAP - a->stage_len) {
        if (stage_put(a, a->wbuf.p, a->wbuf.len) != 0) {
            rc = ck_err__errno(st, errno, "cannot stage audit entries in", STAGE_FILE);
            goto cleanup;
        }
    } else {
        CK_GUARD(stage_flush_or_break(st));
        int r = log_write(a, a->wbuf.p, a->wbuf.len);
        if (r != 0) {
            rc = log_write_error(st, r, "cannot write audit segment");
            goto cleanup;
        }
    }
    a->seq = seq;
    memcpy(a->head, head, HASH_BYTES);
    if (a->wbuf.cap > ((size_t)4 << 20))
        ck_buf__free(&a->wbuf); /* do not keep a huge batch's buffer */
    if (keep) {
        *held = true;
        return CK_OK;
    }
    flock(a->lock_fd, LOCK_UN);
    locked = false;
    if (sync) {
        uint64_t t0 = mono_ns();
        if (sync_fd(a) != 0) {
            segment_name(name, a->seg_no);
            rc = ck_err__errno(st, errno, "cannot fsync audit segment", name);
            set_broken(a, rc, ck_err__get(st));
            goto cleanup;
        }
        a->last_sync_ns = mono_ns() - t0;
    }
    rc = CK_OK;
cleanup:
    if (a->wbuf.cap > ((size_t)4 << 20))
        ck_buf__free(&a->wbuf);
    if (locked) {
        /* The flock is never given back with frames staged, unless they
         * cannot be moved: then the next holder replays them. */
        stage_move(a);
        flock(a->lock_fd, LOCK_UN);
    }
    *held = false;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Appending: the queue and its leader                                      */
/* ------------------------------------------------------------------------ */

/* Lead one batch (called and returns with a->mu held, a->leader set). */
static void lead(ck_store *st, bool gather)
{
    ck_audit *a = st->audit;
    if (gather && a->last_batch > 1 && a->queued_strict < a->last_batch) {
        uint64_t wait = a->last_sync_ns / 2;
        struct timespec dl = mono_deadline(wait < GATHER_MAX_NS ? wait : GATHER_MAX_NS);
        while (a->queued_strict < a->last_batch)
            if (pthread_cond_timedwait(&a->leader_cv, &a->mu, &dl) == ETIMEDOUT)
                break;
    }
    pending *batch = a->q_head;
    size_t n_strict = a->queued_strict;
    a->q_head = a->q_tail = NULL;
    a->queued = a->queued_strict = 0;
    int rc = a->broken;
    /* Why the batch failed, for its waiters: copied only on failure (a
     * formatted copy per batch was 2 % of a point release). */
    char msg[CK_ERRMSG_MAX];
    msg[0] = '\0';
    if (rc != CK_OK)
        snprintf(msg, sizeof msg, "%s", a->broken_msg);
    bool held = a->held;
    uint64_t held_ns = a->held_ns;
    pthread_mutex_unlock(&a->mu);

    uint64_t torn = 0;
    if (rc == CK_OK) {
        rc = write_batch(st, batch, n_strict > 0, &torn, &held, &held_ns);
        if (rc != CK_OK)
            snprintf(msg, sizeof msg, "%s", ck_err__get(st));
    } else if (held) {
        flock(a->lock_fd, LOCK_UN);
        held = false;
    }
    if (torn > 0) {
        /* Another process crashed mid-write; its torn tail was cut. Log
         * the repair as the next entry (best effort: the batch is written). */
        __atomic_add_fetch(&a->recovered, torn, __ATOMIC_RELAXED);
    }

    pthread_mutex_lock(&a->mu);
    if (held && !a->held)
        pthread_cond_signal(&a->flush_cv); /* it gives the lease back */
    a->held = held;
    a->held_ns = held_ns;
    for (pending *p = batch; p != NULL; p = p->next) {
        p->rc = rc;
        if (rc != CK_OK)
            snprintf(p->msg, sizeof p->msg, "%s", msg);
        p->done = true;
    }
    if (rc == CK_OK && n_strict == 0 && !a->dirty) {
        a->dirty = true;
        a->dirty_ns = mono_ns();
        pthread_cond_signal(&a->flush_cv);
    }
    if (n_strict > 0)
        a->last_batch = n_strict;
    a->leader = false;
    pthread_cond_broadcast(&a->done_cv);
}

static int append_encoded(ck_store *st, const ck_buf *enc, size_t seq_off, bool strict,
                          uint64_t *seq_out, uint8_t *hash_out)
{
    ck_audit *a = st->audit;
    /* Member by member: msg (256 bytes) is only written, and read, on
     * failure, and hash only on success - no memset of the whole. */
    pending p;
    p.next = NULL;
    p.enc = enc;
    p.seq_off = seq_off;
    p.strict = strict;
    p.done = false;
    p.rc = CK_OK;
    p.seq = 0;
    p.msg[0] = '\0';

    pthread_mutex_lock(&a->mu);
    if (a->broken != CK_OK) {
        int rc = a->broken;
        char msg[CK_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", a->broken_msg);
        pthread_mutex_unlock(&a->mu);
        return ck_err__set(st, rc, "the audit log cannot be written (%s)", msg);
    }
    if (a->q_tail != NULL)
        a->q_tail->next = &p;
    else
        a->q_head = &p;
    a->q_tail = &p;
    a->queued++;
    a->queued_strict += strict;
    if (a->leader)
        pthread_cond_signal(&a->leader_cv);
    while (!p.done) {
        if (!a->leader) {
            a->leader = true;
            lead(st, strict);
        } else {
            pthread_cond_wait(&a->done_cv, &a->mu);
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (p.rc != CK_OK)
        return ck_err__set(st, p.rc, "%s", p.msg);
    if (seq_out != NULL)
        *seq_out = p.seq;
    if (hash_out != NULL)
        memcpy(hash_out, p.hash, HASH_BYTES);
    return CK_OK;
}

static int append_full(ck_store *st, const ck_audit_entry *e, bool strict, uint64_t *seq_out,
                       uint8_t *hash_out, uint64_t *time_out)
{
    int rc;
    ck_buf enc = CK_BUF_INIT;
    size_t seq_off = 0;
    if (st == NULL)
        return CK_EINVAL;
    CK_GUARD(check_entry(st, e));
    CK_ENSURE(st->audit != NULL, ck_err__set(st, CK_EINTERNAL, "the audit log is not open"));
    CK_ENSURE(!st->audit->rdonly, ck_err__set(st, CK_EDENIED,
                                              "the store is open read-only: no audit entry can be "
                                              "written"));
    uint64_t t = now_ms();
    rc = encode_entry(&enc, &seq_off, e, t);
    CK_ENSURE(rc == CK_OK,
              ck_err__set(st, rc,
                          rc == CK_ELIMIT ? "audit entry too large" : "cannot encode audit entry"));
    strict = strict || st->audit_mode == CK_AUDIT_STRICT;
    CK_GUARD(append_encoded(st, &enc, seq_off, strict, seq_out, hash_out));
    if (time_out != NULL)
        *time_out = t;
    rc = CK_OK;
cleanup:
    ck_buf__free(&enc);
    return rc;
}

int ck_audit__append(ck_store *st, const ck_audit_entry *e, bool strict, uint64_t *seq_out,
                     uint8_t hash_out[CK_AUDIT_HASH_BYTES])
{
    return append_full(st, e, strict, seq_out, hash_out, NULL);
}

int ck_audit__append_many(ck_store *st, const ck_audit_entry *e, size_t n, bool strict)
{
    return ck_audit__append_many_out(st, e, n, strict, NULL, NULL);
}

int ck_audit__append_many_out(ck_store *st, const ck_audit_entry *e, size_t n, bool strict,
                              uint64_t *seqs_out, uint8_t (*hashes_out)[CK_AUDIT_HASH_BYTES])
{
    int rc;
    pending *ps = NULL;
    ck_buf *encs = NULL;
    if (st == NULL || (n > 0 && e == NULL))
        return CK_EINVAL;
    if (n == 0)
        return CK_OK;
    ck_audit *a = st->audit;
    CK_ENSURE(a != NULL, ck_err__set(st, CK_EINTERNAL, "the audit log is not open"));
    CK_ENSURE(!a->rdonly, ck_err__set(st, CK_EDENIED,
                                      "the store is open read-only: no audit entry can be "
                                      "written"));
    for (size_t i = 0; i < n; i++)
        CK_GUARD(check_entry(st, &e[i]));
    ps = ck_mem__calloc(n, sizeof *ps);
    encs = ck_mem__calloc(n, sizeof *encs);
    CK_ENSURE(ps != NULL && encs != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    uint64_t t = now_ms();
    for (size_t i = 0; i < n; i++) {
        encs[i] = (ck_buf)CK_BUF_INIT;
        rc = encode_entry(&encs[i], &ps[i].seq_off, &e[i], t);
        CK_ENSURE(rc == CK_OK, ck_err__set(st, rc,
                                           rc == CK_ELIMIT ? "audit entry too large"
                                                           : "cannot encode audit entry"));
        ps[i].enc = &encs[i];
        ps[i].next = i + 1 < n ? &ps[i + 1] : NULL;
    }
    /* Only the last one needs to be strict: the batch that holds it is
     * fsync'ed, and it holds every earlier one (or they went before). */
    ps[n - 1].strict = strict || st->audit_mode == CK_AUDIT_STRICT;

    pthread_mutex_lock(&a->mu);
    if (a->broken != CK_OK) {
        rc = a->broken;
        char msg[CK_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", a->broken_msg);
        pthread_mutex_unlock(&a->mu);
        rc = ck_err__set(st, rc, "the audit log cannot be written (%s)", msg);
        goto cleanup;
    }
    if (a->q_tail != NULL)
        a->q_tail->next = &ps[0];
    else
        a->q_head = &ps[0];
    a->q_tail = &ps[n - 1];
    a->queued += n;
    a->queued_strict += ps[n - 1].strict;
    if (a->leader)
        pthread_cond_signal(&a->leader_cv);
    /* Batches are taken whole and in queue order: once the last entry is
     * done, every one before it is. */
    while (!ps[n - 1].done) {
        if (!a->leader) {
            a->leader = true;
            lead(st, ps[n - 1].strict);
        } else {
            pthread_cond_wait(&a->done_cv, &a->mu);
        }
    }
    pthread_mutex_unlock(&a->mu);
    rc = CK_OK;
    for (size_t i = 0; i < n; i++) {
        if (ps[i].rc != CK_OK) {
            rc = ck_err__set(st, ps[i].rc, "%s", ps[i].msg);
            break;
        }
        if (seqs_out != NULL)
            seqs_out[i] = ps[i].seq;
        if (hashes_out != NULL)
            memcpy(hashes_out[i], ps[i].hash, HASH_BYTES);
    }
cleanup:
    for (size_t i = 0; encs != NULL && i < n; i++)
        ck_buf__free(&encs[i]);
    ck_mem__free(encs);
    ck_mem__free(ps);
    return rc;
}

void ck_audit__pseudonym(uint8_t out[CK_AUDIT_PSEUDONYM_BYTES], const ck_store *st,
                         const unsigned char subject_data_key[CK_KEY_BYTES],
                         const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    static const char SALT_TAG[] = "ckstore audit salt";
    static const char PN_TAG[16] = {'c', 'k', 'a', 'u', 'd', 'i', 't', '-',
                                    's', 'u', 'b', 'j', 'e', 'c', 't', '1'};
    uint8_t salt[32];
    crypto_generichash(salt, sizeof salt, (const unsigned char *)SALT_TAG, sizeof SALT_TAG - 1,
                       subject_data_key, CK_KEY_BYTES);
    crypto_generichash_state h;
    crypto_generichash_init(&h, ck_store__subkey(st, CK_SUBKEY_AUDIT), CK_KEY_BYTES,
                            CK_AUDIT_PSEUDONYM_BYTES);
    crypto_generichash_update(&h, (const unsigned char *)PN_TAG, sizeof PN_TAG);
    crypto_generichash_update(&h, salt, sizeof salt);
    crypto_generichash_update(&h, sid, CK_SUBJECT_ID_BYTES);
    crypto_generichash_final(&h, out, CK_AUDIT_PSEUDONYM_BYTES);
    sodium_memzero(salt, sizeof salt);
    sodium_memzero(&h, sizeof h);
}

int ck_audit__key_event(ck_store *st, const char *actor, const char *slot, const char *change)
{
    ck_audit_detail_item d[] = {{"slot", slot, 0}, {"change", change, 0}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "key";
    e.detail = d;
    e.n_detail = CK_ARRAY_LEN(d);
    return ck_audit__append(st, &e, true, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* The flusher (batched mode)                                               */
/* ------------------------------------------------------------------------ */

/* Move this process's staged frames to the segment while no leader runs,
 * in the leader's role; give the flock back too if `give_back`, or if they
 * cannot be moved (they stay staged, for the next holder). Called, and
 * returns, with a->mu held; the caller checked !a->leader and a->held.
 * Returns stage_move's result; sets no message on the handle. */
static int flush_as_leader(ck_audit *a, bool give_back)
{
    a->leader = true;
    pthread_mutex_unlock(&a->mu);
    int r = stage_move(a);
    if (give_back || r != 0)
        flock(a->lock_fd, LOCK_UN);
    pthread_mutex_lock(&a->mu);
    if (give_back || r != 0)
        a->held = false;
    a->leader = false;
    pthread_cond_broadcast(&a->done_cv);
    return r;
}

static void *flusher_main(void *arg)
{
    ck_store *st = arg;
    ck_audit *a = st->audit;
    uint64_t window = (uint64_t)(st->audit_flush_ms != 0 ? st->audit_flush_ms : 10u) * 1000000u;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        if (!a->dirty && !a->held) {
            pthread_cond_wait(&a->flush_cv, &a->mu);
            continue;
        }
        /* Let the window's entries gather, then sync them all at once;
         * give the flock back (with what is staged) when its lease ends
         * and no batch is being written (a leader gives it back itself). */
        uint64_t now = mono_ns(), due = UINT64_MAX;
        if (a->held && !a->leader) {
            if (now - a->held_ns >= a->lease_ns) {
                flush_as_leader(a, true);
                continue;
            }
            due = a->held_ns + a->lease_ns;
        } else if (a->held) {
            due = now + LEASE_NS; /* look again after the leader's batch */
        }
        if (a->dirty && now - a->dirty_ns < window && a->dirty_ns + window < due)
            due = a->dirty_ns + window;
        if (!a->dirty || now - a->dirty_ns < window) {
            if (due != UINT64_MAX) {
                struct timespec dl = mono_deadline(due - now);
                pthread_cond_timedwait(&a->flush_cv, &a->mu, &dl);
            }
            continue;
        }
        /* The window is over: what is staged goes to the segment first. */
        if (a->held && a->leader) {
            struct timespec dl = mono_deadline(LEASE_NS);
            pthread_cond_timedwait(&a->done_cv, &a->mu, &dl);
            continue;
        }
        if (a->held && a->stage_len > 0) {
            flush_as_leader(a, false);
            continue;
        }
        a->dirty = false;
        pthread_mutex_unlock(&a->mu);
        int r = sync_fd(a);
        int err = errno;
        pthread_mutex_lock(&a->mu);
        if (r != 0 && a->broken == CK_OK) {
            a->broken = CK_EIO;
            snprintf(a->broken_msg, sizeof a->broken_msg,
                     "background fsync of the audit log failed: %s", strerror(err));
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Before this process reads the log: move what it has staged to the
 * segment, so that the reader sees every entry written so far. */
static int publish_staged(ck_store *st)
{
    ck_audit *a = st->audit;
    int r = 0;
    if (a == NULL || a->stage == NULL)
        return CK_OK;
    pthread_mutex_lock(&a->mu);
    while (a->leader)
        pthread_cond_wait(&a->done_cv, &a->mu);
    if (a->held && a->stage_len > 0)
        r = flush_as_leader(a, false);
    pthread_mutex_unlock(&a->mu);
    return r == 0 ? CK_OK : broken_error(st);
}

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                      */
/* ------------------------------------------------------------------------ */

static void audit_free(ck_audit *a)
{
    if (a == NULL)
        return;
    if (a->fd >= 0)
        close(a->fd);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    if (a->stage != NULL)
        munmap(a->stage, STAGE_BYTES);
    if (a->stage_fd >= 0)
        close(a->stage_fd);
    ck_buf__free(&a->wbuf);
    if (a->made_rw)
        pthread_rwlock_destroy(&a->fd_lock);
    if (a->made_cv3)
        pthread_cond_destroy(&a->flush_cv);
    if (a->made_cv2)
        pthread_cond_destroy(&a->leader_cv);
    if (a->made_cv1)
        pthread_cond_destroy(&a->done_cv);
    if (a->made_mu)
        pthread_mutex_destroy(&a->mu);
    ck_mem__free(a);
}

static ck_audit *audit_new(void)
{
    ck_audit *a = ck_mem__calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->fd = a->lock_fd = a->stage_fd = -1;
    a->lease_ns = LEASE_NS;
    a->segment_max = CK_AUDIT_SEGMENT_MAX_DEFAULT;
    pthread_condattr_t ca;
    bool ca_made = pthread_condattr_init(&ca) == 0;
    if (ca_made)
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    a->made_mu = pthread_mutex_init(&a->mu, NULL) == 0;
    a->made_cv1 = ca_made && pthread_cond_init(&a->done_cv, &ca) == 0;
    a->made_cv2 = ca_made && pthread_cond_init(&a->leader_cv, &ca) == 0;
    a->made_cv3 = ca_made && pthread_cond_init(&a->flush_cv, &ca) == 0;
    a->made_rw = pthread_rwlock_init(&a->fd_lock, NULL) == 0;
    if (ca_made)
        pthread_condattr_destroy(&ca);
    if (!a->made_mu || !a->made_cv1 || !a->made_cv2 || !a->made_cv3 || !a->made_rw) {
        audit_free(a);
        return NULL;
    }
    return a;
}

static int open_segment(ck_store *st, unsigned no, int flags, int *out)
{
    char name[CK_AUDIT_SEGMENT_NAME_MAX];
    segment_name(name, no);
    char *path = segment_path(st, no);
    if (path == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
    int err = errno;
    ck_mem__free(path);
    if (fd < 0 && err == ENOENT)
        return ck_err__set(st, CK_EINTEGRITY, "the audit log segment %s is missing", name);
    if (fd < 0 && err == EEXIST)
        return ck_err__set(st, CK_EEXIST,
                           "%s already holds an audit log (remove it if it is left over "
                           "from a failed init)",
                           name);
    if (fd < 0)
        return ck_err__errno(st, err, "cannot open audit segment", name);
    *out = fd;
    return CK_OK;
}

/* The last frame of segment `no` (opened on `fd`): walks the lengths only
 * (verify checks the chain). Sets *end to the end of the last complete
 * frame, *torn to the bytes after it, and the head to that frame's seq and
 * stored hash (left unchanged if the segment is empty). */
static int find_tail(ck_store *st, int fd, unsigned no, uint64_t *end, uint64_t *torn,
                     uint64_t *seq, uint8_t head[HASH_BYTES])
{
    int rc = CK_OK;
    char name[CK_AUDIT_SEGMENT_NAME_MAX];
    frame_reader r;
    frame f, last = {0, NULL, 0, NULL};
    fr_kind k;
    segment_name(name, no);
    fr_init(&r, fd, 0);
    *end = *torn = 0;
    ck_buf keep = CK_BUF_INIT;
    while ((k = fr_next(&r, &f)) == FR_FRAME) {
        last = f;
        *end = f.offset + FRAME_OVERHEAD + f.len;
        ck_buf__reset(&keep);
        CK_GUARD(ck_buf__append(&keep, f.entry, f.len + HASH_BYTES));
    }
    CK_ENSURE(k != FR_ERR, ck_err__errno(st, errno, "cannot read audit segment", name));
    CK_ENSURE(k != FR_BADLEN, ck_err__set(st, CK_EINTEGRITY,
                                          "audit segment %s has a malformed frame at offset %llu "
                                          "(run ckstore audit verify)",
                                          name, (unsigned long long)f.offset));
    if (k == FR_TORN)
        *torn = f.len;
    if (last.entry != NULL) {
        int src = entry_seq(keep.p, last.len, seq, NULL);
        CK_ENSURE(src != CK_ENOMEM,
                  ck_err__set(st, CK_ENOMEM, "out of memory while reading the audit log"));
        CK_ENSURE(src == CK_OK, ck_err__set(st, CK_EINTEGRITY,
                                            "the last entry of audit segment %s does not decode "
                                            "(run ckstore audit verify)",
                                            name));
        memcpy(head, keep.p + last.len, HASH_BYTES);
    }
    rc = CK_OK;
cleanup:
    ck_buf__free(&keep);
    fr_free(&r);
    return rc;
}

/* Find the head of the log (under the flock when writable) and cut a torn
 * tail. Returns CK_EINTEGRITY for a damaged log (the caller then opens the
 * store anyway, with appends refused, so that verify can name the damage). */
static int load_head(ck_store *st, uint64_t *torn)
{
    ck_audit *a = st->audit;
    uint64_t end;
    *torn = 0;
    CK_TRY(find_tail(st, a->fd, a->seg_no, &end, torn, &a->seq, a->head));
    if (end == 0 && a->seg_no > 1) {
        /* A roll that crashed before its first write: the head is the last
         * entry of the previous segment. */
        int fd;
        uint64_t pend, ptorn;
        CK_TRY(open_segment(st, a->seg_no - 1, O_RDONLY, &fd));
        int rc = find_tail(st, fd, a->seg_no - 1, &pend, &ptorn, &a->seq, a->head);
        close(fd);
        CK_TRY(rc);
        if (ptorn != 0)
            return ck_err__set(st, CK_EINTEGRITY, "an audit segment before the last one is cut");
    }
    if (a->seq == 0)
        return ck_err__set(st, CK_EINTEGRITY, "the audit log is empty: its first entry is missing");
    a->size = end;
    if (*torn > 0 && !a->rdonly) {
        char name[CK_AUDIT_SEGMENT_NAME_MAX];
        segment_name(name, a->seg_no);
        if (ftruncate(a->fd, (off_t)end) != 0 || fdatasync(a->fd) != 0)
            return ck_err__errno(st, errno, "cannot truncate the torn audit entry of", name);
    }
    return CK_OK;
}

static int log_recover(ck_store *st, uint64_t offset, uint64_t bytes)
{
    char seg[CK_AUDIT_SEGMENT_NAME_MAX];
    segment_name(seg, st->audit->seg_no);
    ck_audit_detail_item d[] = {{"segment", seg, 0},
                                {"offset", NULL, (int64_t)offset},
                                {"torn_bytes", NULL, (int64_t)bytes}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = ACTOR_SELF;
    e.action = "recover";
    e.detail = d;
    e.n_detail = CK_ARRAY_LEN(d);
    return ck_audit__append(st, &e, true, NULL, NULL);
}

static int log_init(ck_store *st)
{
    char id[2 * CK_STORE_ID_BYTES + 1];
    sodium_bin2hex(id, sizeof id, st->store_id, sizeof st->store_id);
    ck_audit_detail_item d[] = {{"store_id", id, 0}, {"format", NULL, (int64_t)st->format}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = ACTOR_SELF;
    e.action = "init";
    e.detail = d;
    e.n_detail = CK_ARRAY_LEN(d);
    return ck_audit__append(st, &e, true, NULL, NULL);
}

int ck_audit__open(ck_store *st, bool create)
{
    int rc;
    bool locked = false;
    uint64_t torn = 0;
    ck_audit *a = audit_new();
    st->audit = a;
    if (a == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    a->rdonly = (st->flags & CK_OPEN_RDONLY) != 0;
    int wflags = a->rdonly ? O_RDONLY : O_RDWR | O_APPEND;

    if (create) {
        CK_GUARD(open_segment(st, 1, O_RDWR | O_APPEND | O_CREAT | O_EXCL, &a->fd));
        CK_GUARD(sync_dir(st));
        CK_GUARD(open_segment(st, 1, O_RDONLY, &a->lock_fd));
        CK_GUARD(stage_open(st));
        if (a->stage != NULL)
            stage_set_len(a, 0); /* a failed init's leftovers are not this log's */
        a->seg_no = 1;
    } else {
        unsigned max;
        CK_GUARD(segment_max_no(st, &max));
        CK_ENSURE(max > 0, ck_err__set(st, CK_EINTEGRITY, "the audit log (%s) is missing",
                                       CK_AUDIT_FIRST_SEGMENT));
        CK_GUARD(open_segment(st, 1, O_RDONLY, &a->lock_fd));
        CK_GUARD(open_segment(st, max, wflags, &a->fd));
        a->seg_no = max;
        if (!a->rdonly) {
            CK_ENSURE(
                lock_ex(a->lock_fd) == 0,
                ck_err__errno(st, errno, "cannot lock the audit log", CK_AUDIT_FIRST_SEGMENT));
            locked = true;
        }
        if (!a->rdonly)
            CK_GUARD(stage_open(st));
        rc = load_head(st, &torn);
        if (rc == CK_EINTEGRITY) {
            /* Open anyway: verify must be able to name the damage; every
             * append fails until the log is repaired. */
            a->broken = rc;
            snprintf(a->broken_msg, sizeof a->broken_msg, "%s", ck_err__get(st));
            torn = 0;
        } else {
            CK_GUARD(rc);
            /* What a process that died holding the flock left staged. */
            uint64_t end = a->size;
            if (!a->rdonly)
                CK_GUARD(stage_recover(st, &torn));
            if (a->size != end && fdatasync(a->fd) != 0) {
                char name[CK_AUDIT_SEGMENT_NAME_MAX];
                segment_name(name, a->seg_no);
                CK_GUARD(
                    ck_err__errno(st, errno, "cannot sync the replayed audit entries of", name));
            }
        }
        if (locked)
            flock(a->lock_fd, LOCK_UN);
        locked = false;
    }
    if (!a->rdonly) {
        CK_ENSURE(pthread_create(&a->flusher, NULL, flusher_main, st) == 0,
                  ck_err__set(st, CK_ENOMEM, "cannot start the audit flusher thread"));
        a->flusher_started = true;
    }
    if (create)
        CK_GUARD(log_init(st));
    if (torn > 0 && !a->rdonly) { /* read-only: seen by verify, left as is */
        a->recovered = torn;
        CK_GUARD(log_recover(st, a->size, torn));
    }
    rc = CK_OK;
cleanup:
    if (locked)
        flock(a->lock_fd, LOCK_UN);
    if (rc != CK_OK)
        ck_audit__close(st);
    return rc;
}

void ck_audit__close(ck_store *st)
{
    ck_audit *a = st->audit;
    if (a == NULL)
        return;
    if (a->flusher_started) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_signal(&a->flush_cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->flusher, NULL);
    }
    if (a->held) {
        /* Nobody is left to report a failure to: frames that cannot be
         * moved stay staged, and the next holder replays them. */
        if (a->stage_len > 0 && stage_move(a) == 0)
            a->dirty = true;
        flock(a->lock_fd, LOCK_UN);
    }
    if (a->dirty && a->fd >= 0)
        fdatasync(a->fd);
    audit_free(a);
    st->audit = NULL;
}

uint64_t ck_audit__head_seq(ck_store *st)
{
    ck_audit *a = st->audit;
    if (a == NULL)
        return 0;
    pthread_mutex_lock(&a->mu);
    uint64_t seq = a->seq;
    pthread_mutex_unlock(&a->mu);
    return seq;
}

void ck_audit__test_fail_next(ck_store *st, ck_audit_fail what)
{
    __atomic_store_n(&st->audit->test_fail, (int)what, __ATOMIC_RELEASE);
}

void ck_audit__test_stage_off(ck_store *st)
{
    ck_audit *a = st->audit;
    if (publish_staged(st) != CK_OK)
        return;
    pthread_mutex_lock(&a->mu);
    while (a->leader)
        pthread_cond_wait(&a->done_cv, &a->mu);
    if (a->stage != NULL && a->stage_len == 0) {
        munmap(a->stage, STAGE_BYTES);
        close(a->stage_fd);
        a->stage = NULL;
        a->stage_fd = -1;
    }
    pthread_mutex_unlock(&a->mu);
}

void ck_audit__test_lease(ck_store *st, uint64_t ns)
{
    pthread_mutex_lock(&st->audit->mu);
    st->audit->lease_ns = ns;
    pthread_mutex_unlock(&st->audit->mu);
}

bool ck_audit__test_staging(ck_store *st)
{
    return st->audit->stage != NULL;
}

void ck_audit__test_segment_max(ck_store *st, uint64_t bytes)
{
    pthread_mutex_lock(&st->audit->mu);
    st->audit->segment_max = bytes;
    pthread_mutex_unlock(&st->audit->mu);
}

CK_EXPORT uint64_t ck_audit_recovered(ck_store *st)
{
    if (st == NULL || st->audit == NULL)
        return 0;
    return __atomic_load_n(&st->audit->recovered, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Walking the whole log: verify and queries                                */
/* ------------------------------------------------------------------------ */

typedef struct walker {
    ck_store *st;
    unsigned max_no; /* highest segment listed at the start */
    unsigned seg_no; /* segment being read (0: none yet) */
    unsigned segments;
    int fd;
    frame_reader rd;
    bool reading;
    uint64_t expect; /* next sequence number */
    uint8_t prev[HASH_BYTES];
    uint64_t torn;
    bool done;
    /* the last problem */
    ck_audit_problem problem;
    char segment[CK_AUDIT_SEGMENT_NAME_MAX];
    uint64_t offset;
} walker;

static int walker_start(walker *w, ck_store *st)
{
    memset(w, 0, sizeof *w);
    w->st = st;
    w->fd = -1;
    w->expect = 1;
    CK_TRY(publish_staged(st));
    return segment_max_no(st, &w->max_no);
}

static void walker_free(walker *w)
{
    if (w->reading)
        fr_free(&w->rd);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    w->reading = false;
}

static int walker_fail(walker *w, ck_audit_problem p, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int walker_fail(walker *w, ck_audit_problem p, uint64_t offset, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    w->problem = p;
    w->offset = offset;
    segment_name(w->segment, w->seg_no);
    w->done = true;
    return ck_err__set(w->st, CK_EINTEGRITY, "audit log: %s, offset %llu (entry %llu): %s",
                       w->segment, (unsigned long long)offset, (unsigned long long)w->expect, what);
}

/* Open the next segment. CK_ENOTFOUND: there is none (the end). */
static int walker_next_segment(walker *w)
{
    walker_free(w);
    w->seg_no++;
    char *path = segment_path(w->st, w->seg_no);
    if (path == NULL)
        return ck_err__set(w->st, CK_ENOMEM, "out of memory");
    w->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int err = errno;
    ck_mem__free(path);
    if (w->fd < 0 && err == ENOENT) {
        if (w->seg_no == 1 || w->seg_no <= w->max_no)
            return walker_fail(w, CK_AUDIT_PROBLEM_MISSING, 0, "the segment file is missing");
        w->seg_no--;
        return CK_ENOTFOUND;
    }
    if (w->fd < 0) {
        char name[CK_AUDIT_SEGMENT_NAME_MAX];
        segment_name(name, w->seg_no);
        return ck_err__errno(w->st, err, "cannot open audit segment", name);
    }
    fr_init(&w->rd, w->fd, 0);
    w->reading = true;
    w->segments++;
    return CK_OK;
}

/* The next good entry, decoded into `rec` (strings in `arena`).
 * CK_ENOTFOUND at the end; CK_EINTEGRITY at the first bad entry. */
static int walker_next(walker *w, ck_audit_record *rec, ck_arena *arena)
{
    if (w->done)
        return w->problem != CK_AUDIT_PROBLEM_NONE ? CK_EINTEGRITY : CK_ENOTFOUND;
    for (;;) {
        if (!w->reading) {
            int rc = walker_next_segment(w);
            if (rc == CK_ENOTFOUND) {
                w->done = true;
                if (w->expect == 1) {
                    w->seg_no = 1;
                    return walker_fail(w, CK_AUDIT_PROBLEM_MISSING, 0,
                                       "the log is empty (its first entry is missing)");
                }
                return CK_ENOTFOUND;
            }
            if (rc != CK_OK)
                return rc;
        }
        frame f;
        fr_kind k = fr_next(&w->rd, &f);
        if (k == FR_END) {
            w->reading = false;
            fr_free(&w->rd);
            continue;
        }
        if (k == FR_ERR) {
            char name[CK_AUDIT_SEGMENT_NAME_MAX];
            segment_name(name, w->seg_no);
            return ck_err__errno(w->st, errno, "cannot read audit segment", name);
        }
        if (k == FR_BADLEN)
            return walker_fail(w, CK_AUDIT_PROBLEM_UNDECODABLE, f.offset,
                               "the frame length is impossible");
        if (k == FR_TORN) {
            /* Torn only if it is the very end of the log. */
            char *next = segment_path(w->st, w->seg_no + 1);
            bool more = next == NULL || access(next, F_OK) == 0 || w->seg_no < w->max_no;
            ck_mem__free(next);
            if (more)
                return walker_fail(w, CK_AUDIT_PROBLEM_UNDECODABLE, f.offset,
                                   "the entry is cut short (%zu bytes)", f.len);
            w->torn = f.len;
            w->done = true;
            if (w->expect == 1)
                return walker_fail(w, CK_AUDIT_PROBLEM_MISSING, 0,
                                   "the log is empty (its first entry is missing)");
            return CK_ENOTFOUND;
        }
        ck_arena__reset(arena);
        int drc = ck_audit__decode(rec, f.entry, f.len, arena);
        if (drc == CK_ENOMEM) /* not the entry's fault: no verdict on it */
            return ck_err__set(w->st, CK_ENOMEM, "out of memory while reading the audit log");
        if (drc != CK_OK)
            return walker_fail(w, CK_AUDIT_PROBLEM_UNDECODABLE, f.offset,
                               "the entry does not decode");
        if (rec->seq != w->expect)
            return walker_fail(w, CK_AUDIT_PROBLEM_SEQ, f.offset,
                               "found sequence number %llu (entries removed, reordered or "
                               "inserted)",
                               (unsigned long long)rec->seq);
        uint8_t h[HASH_BYTES];
        chain_hash(h, w->st, w->prev, f.entry, f.len);
        if (sodium_memcmp(h, f.hash, HASH_BYTES) != 0)
            return walker_fail(w, CK_AUDIT_PROBLEM_HASH, f.offset,
                               "the chain hash does not match (entry changed or forged)");
        memcpy(w->prev, h, HASH_BYTES);
        memcpy(rec->hash, h, HASH_BYTES);
        rec->offset = f.offset;
        w->expect++;
        return CK_OK;
    }
}

/* ------------------------------------------------------------------------ */
/* Verify and checkpoints                                                   */
/* ------------------------------------------------------------------------ */

static void checkpoint_message(uint8_t *msg, const ck_audit_checkpoint *cp)
{
    size_t n = sizeof CHECKPOINT_TAG - 1;
    memcpy(msg, CHECKPOINT_TAG, n);
    memcpy(msg + n, cp->store_id, CK_STORE_ID_BYTES);
    n += CK_STORE_ID_BYTES;
    ck_be64_put(msg + n, cp->seq);
    ck_be64_put(msg + n + 8, cp->time_ms);
    memcpy(msg + n + 16, cp->hash, HASH_BYTES);
}

#define CHECKPOINT_MSG_BYTES (sizeof CHECKPOINT_TAG - 1 + CK_STORE_ID_BYTES + 16 + HASH_BYTES)

CK_EXPORT int ck_audit_checkpoint_check(const ck_audit_checkpoint *cp)
{
    uint8_t msg[CHECKPOINT_MSG_BYTES];
    if (cp == NULL || cp->version != CK_AUDIT_CHECKPOINT_VERSION)
        return CK_EINVAL;
    checkpoint_message(msg, cp);
    if (crypto_sign_verify_detached(cp->signature, msg, sizeof msg, cp->public_key) != 0)
        return CK_EINTEGRITY;
    return CK_OK;
}

CK_EXPORT int ck_audit_verify(ck_audit_verify_result *out, ck_store *st,
                              const ck_audit_checkpoint *cp)
{
    int rc;
    walker w;
    ck_arena arena = CK_ARENA_INIT;
    ck_audit_record rec;
    bool cp_seen = false;
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    if (out->version != CK_AUDIT_VERIFY_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_audit_verify_result version %u is not supported",
                           out->version);
    ck_audit_verify_result res = CK_AUDIT_VERIFY_INIT;
    res.recovered_bytes = ck_audit_recovered(st);
    if (cp != NULL) {
        rc = ck_audit_checkpoint_check(cp);
        if (rc == CK_EINVAL)
            return ck_err__set(st, rc, "ck_audit_checkpoint version %u is not supported",
                               cp->version);
        if (rc != CK_OK || sodium_memcmp(cp->store_id, st->store_id, CK_STORE_ID_BYTES) != 0) {
            res.problem = CK_AUDIT_PROBLEM_CHECKPOINT;
            res.seq = cp->seq;
            *out = res;
            return ck_err__set(st, CK_EINTEGRITY,
                               rc != CK_OK ? "the checkpoint's signature is not valid"
                                           : "the checkpoint belongs to another store");
        }
    }
    CK_GUARD(walker_start(&w, st));
    while ((rc = walker_next(&w, &rec, &arena)) == CK_OK) {
        res.entries++;
        res.head_seq = rec.seq;
        res.head_time_ms = rec.time_ms;
        memcpy(res.head_hash, rec.hash, HASH_BYTES);
        if (cp != NULL && rec.seq == cp->seq) {
            cp_seen = true;
            if (sodium_memcmp(rec.hash, cp->hash, HASH_BYTES) != 0) {
                w.expect = rec.seq;
                rc = walker_fail(&w, CK_AUDIT_PROBLEM_CHECKPOINT, rec.offset,
                                 "the entry's hash differs from the checkpoint's: the log does "
                                 "not extend it");
                break;
            }
        }
    }
    res.segments = w.segments;
    res.torn_bytes = w.torn;
    if (rc == CK_ENOTFOUND && cp != NULL && !cp_seen) {
        w.expect = cp->seq;
        rc = walker_fail(&w, CK_AUDIT_PROBLEM_CHECKPOINT, 0,
                         "the log ends at entry %llu, before the checkpoint's entry: entries "
                         "were removed",
                         (unsigned long long)res.head_seq);
    }
    if (rc == CK_EINTEGRITY) {
        res.problem = w.problem;
        memcpy(res.segment, w.segment, sizeof res.segment);
        res.offset = w.offset;
        res.seq = w.expect;
        *out = res;
        goto cleanup;
    }
    CK_ENSURE(rc == CK_ENOTFOUND, rc);
    *out = res;
    rc = CK_OK;
cleanup:
    walker_free(&w);
    ck_arena__free(&arena);
    return rc;
}

CK_EXPORT int ck_audit_checkpoint_make(ck_audit_checkpoint *out, ck_store *st,
                                       const char *signing_key_file)
{
    int rc;
    char *def = NULL;
    unsigned char *seed = NULL, *sk = NULL;
    ck_audit_checkpoint cp;
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (out == NULL || st == NULL)
        return CK_EINVAL;
    memset(&cp, 0, sizeof cp);
    if (signing_key_file == NULL) {
        def = ck_mem__path_join(st->dir, SIGNING_KEY_FILE);
        CK_ENSURE(def != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
        signing_key_file = def;
    }
    CK_ENSURE(st->audit != NULL && !st->audit->rdonly,
              ck_err__set(st, CK_EDENIED, "the store is open read-only"));
    seed = ck_mem__smalloc(crypto_sign_SEEDBYTES);
    sk = ck_mem__smalloc(crypto_sign_SECRETKEYBYTES);
    CK_ENSURE(seed != NULL && sk != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    _Static_assert(crypto_sign_SEEDBYTES == CK_KEY_FILE_BYTES, "seed file size");
    if (access(signing_key_file, F_OK) != 0 && errno == ENOENT)
        CK_GUARD(ck_keys__create_key_file(st, seed, signing_key_file));
    else
        CK_GUARD(ck_keys__read_key_file(st, seed, signing_key_file));
    crypto_sign_seed_keypair(cp.public_key, sk, seed);

    char pk_hex[2 * CK_AUDIT_PUBLIC_KEY_BYTES + 1];
    sodium_bin2hex(pk_hex, sizeof pk_hex, cp.public_key, sizeof cp.public_key);
    ck_audit_detail_item d[] = {{"public_key", pk_hex, 0}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = ACTOR_SELF;
    e.action = "checkpoint";
    e.detail = d;
    e.n_detail = 1;
    CK_GUARD(append_full(st, &e, true, &cp.seq, cp.hash, &cp.time_ms));

    cp.version = CK_AUDIT_CHECKPOINT_VERSION;
    memcpy(cp.store_id, st->store_id, CK_STORE_ID_BYTES);
    uint8_t msg[CHECKPOINT_MSG_BYTES];
    checkpoint_message(msg, &cp);
    crypto_sign_detached(cp.signature, NULL, msg, sizeof msg, sk);
    *out = cp;
    rc = CK_OK;
cleanup:
    ck_mem__sfree(sk);
    ck_mem__sfree(seed);
    ck_mem__free(def);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

struct ck_audit_cursor {
    ck_store *st;
    walker w;
    ck_arena arena;
    ck_audit_record rec;
    char *actor, *action, *purpose;
    bool has_subject;
    unsigned char subject[CK_AUDIT_PSEUDONYM_BYTES];
    uint64_t since_ms, until_ms;
    char segment[CK_AUDIT_SEGMENT_NAME_MAX];
};

static bool opt_eq(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

static bool matches(const ck_audit_cursor *c, const ck_audit_record *r)
{
    if (!opt_eq(c->actor, r->actor) || !opt_eq(c->action, r->action) ||
        !opt_eq(c->purpose, r->purpose))
        return false;
    if (c->has_subject &&
        (r->subject == NULL || memcmp(r->subject, c->subject, CK_AUDIT_PSEUDONYM_BYTES) != 0))
        return false;
    if (r->time_ms < c->since_ms || (c->until_ms != 0 && r->time_ms >= c->until_ms))
        return false;
    return true;
}

static int dup_opt(char **out, const char *s)
{
    *out = NULL;
    if (s == NULL)
        return CK_OK;
    *out = ck_mem__strndup(s, strlen(s));
    return *out == NULL ? CK_ENOMEM : CK_OK;
}

CK_EXPORT void ck_audit_cursor_free(ck_audit_cursor *c)
{
    if (c == NULL)
        return;
    walker_free(&c->w);
    ck_arena__free(&c->arena);
    ck_mem__free(c->actor);
    ck_mem__free(c->action);
    ck_mem__free(c->purpose);
    ck_mem__free(c);
}

CK_EXPORT int ck_audit_query(ck_audit_cursor **out, ck_store *st, const ck_audit_filter *f)
{
    int rc;
    if (out == NULL)
        return CK_EINVAL;
    *out = NULL;
    if (st == NULL)
        return CK_EINVAL;
    if (f != NULL && f->version != CK_AUDIT_FILTER_VERSION)
        return ck_err__set(st, CK_EINVAL, "ck_audit_filter version %u is not supported",
                           f->version);
    ck_audit_cursor *c = ck_mem__calloc(1, sizeof *c);
    if (c == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    c->st = st;
    c->w.fd = -1;
    if (f != NULL) {
        CK_ENSURE(dup_opt(&c->actor, f->actor) == CK_OK &&
                      dup_opt(&c->action, f->action) == CK_OK &&
                      dup_opt(&c->purpose, f->purpose) == CK_OK,
                  ck_err__set(st, CK_ENOMEM, "out of memory"));
        if (f->subject != NULL) {
            c->has_subject = true;
            memcpy(c->subject, f->subject, CK_AUDIT_PSEUDONYM_BYTES);
        }
        c->since_ms = f->since_ms;
        c->until_ms = f->until_ms;
    }
    CK_GUARD(walker_start(&c->w, st));
    *out = c;
    return CK_OK;
cleanup:
    ck_audit_cursor_free(c);
    return rc;
}

CK_EXPORT int ck_audit_next(ck_audit_cursor *c, const ck_audit_record **out)
{
    if (out != NULL)
        *out = NULL;
    if (c == NULL || out == NULL)
        return CK_EINVAL;
    for (;;) {
        int rc = walker_next(&c->w, &c->rec, &c->arena);
        if (rc != CK_OK)
            return rc;
        if (!matches(c, &c->rec))
            continue;
        segment_name(c->segment, c->w.seg_no);
        c->rec.segment = c->segment;
        *out = &c->rec;
        return CK_OK;
    }
}
