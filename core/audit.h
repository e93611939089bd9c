/*
 * audit.h - the tamper-evident audit log, as the other modules use it.
 *
 * Internal. The public side (verify, checkpoints, queries) is in
 * include/ckstore.h, section "Audit log"; the file format and the
 * guarantees are in docs/audit.md.
 *
 * Every module that releases, changes consent, erases, exports or touches
 * keys fills a ck_audit_entry and calls ck_audit__append() BEFORE it lets
 * anything out: if the append fails, the operation fails and releases
 * nothing (fail closed). An entry holds names only - field names, purpose
 * ids, reasons, counts - never a value, a ref or an identifying datum: the
 * encoder refuses strings outside the small character sets below, so an
 * e-mail address or a free-text value cannot even be written.
 *
 * Usage (a release):
 *
 *     uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];
 *     ck_audit__pseudonym(pn, st, dk, sid);
 *     const char *rel[] = {"first_name", "city"};
 *     ck_audit_withheld_field wh[] = {{"email", "no_consent"}};
 *     ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
 *     e.actor = actor; e.action = "release"; e.purpose = purpose;
 *     e.subject = pn;
 *     e.released = rel; e.n_released = 2;
 *     e.withheld = wh; e.n_withheld = 1;
 *     rc = ck_audit__append(st, &e, false, NULL, NULL);
 *     if (rc != CK_OK) goto cleanup;   // release nothing
 */
#ifndef CK_AUDIT_H
#define CK_AUDIT_H

#include "store.h"

/* Limits, enforced when an entry is written and when it is decoded. */
#define CK_AUDIT_ENTRY_MAX  (64u * 1024u) /* encoded entry (msgpack) bytes */
#define CK_AUDIT_NAME_MAX   64u           /* action, purpose, field, reason, detail key */
#define CK_AUDIT_TEXT_MAX   256u          /* actor, recipient */
#define CK_AUDIT_DVAL_MAX   128u          /* a detail string value */
#define CK_AUDIT_LIST_MAX   1024u         /* released names, withheld pairs */
#define CK_AUDIT_DETAIL_MAX 64u           /* detail pairs */

/* Default size past which a new segment is started. */
#define CK_AUDIT_SEGMENT_MAX_DEFAULT ((uint64_t)64 << 20)

/*
 * ck_audit_entry - what a module asks to log. Every pointer is borrowed for
 * the duration of ck_audit__append only.
 *
 * Character sets (checked; anything else is CK_EINVAL):
 *  - "name"  (action, purpose, field names, reasons, detail keys):
 *            1..CK_AUDIT_NAME_MAX bytes of [A-Za-z0-9_.:-];
 *  - "text"  (actor, recipient): 1..CK_AUDIT_TEXT_MAX bytes of UTF-8 with
 *            no control character - they name the store's own users and
 *            partners, never a customer;
 *  - "dval"  (a detail string value: a count's unit, a receipt in hex, a
 *            segment name): 1..CK_AUDIT_DVAL_MAX bytes of
 *            [A-Za-z0-9_.:/+=-] - no space, no '@'.
 * Detail items carry an integer when `str` is NULL (ck_audit_detail_item).
 */
typedef struct ck_audit_entry {
    const char *actor;           /* required, "text" */
    const char *action;          /* required, "name": release, segment, consent, ... */
    const char *purpose;         /* optional, "name" */
    const char *recipient;       /* optional, "text" */
    const uint8_t *subject;      /* optional: CK_AUDIT_PSEUDONYM_BYTES from
                                    ck_audit__pseudonym(), never a subject id */
    const char *const *released; /* field names released, "name" */
    size_t n_released;
    const ck_audit_withheld_field *withheld; /* field name -> reason, "name" */
    size_t n_withheld;
    const ck_audit_detail_item *detail; /* key "name" -> "dval" or integer */
    size_t n_detail;
} ck_audit_entry;

#define CK_AUDIT_ENTRY_INIT                                                                        \
    {                                                                                              \
        NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 0, NULL, 0                                    \
    }

/*
 * ck_audit__append - append one entry to the store's audit log.
 *
 * strict   in:  true: return only once the entry is fsync'ed (consent,
 *               erasure and key operations pass true). false: follow the
 *               store's audit mode (CK_AUDIT_STRICT makes it strict; in
 *               CK_AUDIT_BATCHED the entry is written - visible to other
 *               processes - before this returns and fsync'ed within
 *               audit_flush_ms by the flusher thread).
 * seq_out  out: if not NULL, the entry's sequence number.
 * hash_out out: if not NULL, the entry's chain hash.
 *
 * Thread-safe; entries of concurrent callers are written together (group
 * commit) and share one fsync. Several processes may append to one store:
 * they serialise on an exclusive flock of the first segment.
 *
 * Returns CK_OK; CK_EINVAL (an entry field outside its character set or
 * limits - ck_errmsg names which, never its content); CK_ELIMIT (entry too
 * large); CK_EDENIED (store opened read-only); CK_EIO / CK_ENOSPC (write or
 * fsync failed: the caller must release nothing); CK_EINTEGRITY (the log on
 * disk was found damaged: appending is refused until it is repaired);
 * CK_ENOMEM. After a failed fsync every later append fails too (the
 * kernel may have dropped the unwritten pages): reopen the store.
 */
int ck_audit__append(ck_store *st, const ck_audit_entry *e, bool strict, uint64_t *seq_out,
                     uint8_t hash_out[CK_AUDIT_HASH_BYTES]);

/*
 * ck_audit__append_many - append `n` entries at once, in order, in one
 * write (a bulk operation such as an import). strict: return only once all
 * are fsync'ed. Returns as ck_audit__append; on failure none, some or all
 * of them may have been written (never a torn one).
 */
int ck_audit__append_many(ck_store *st, const ck_audit_entry *e, size_t n, bool strict);
/* The same, giving each entry's sequence number and chain hash (either
 * array may be NULL; n elements each), for receipts. */
int ck_audit__append_many_out(ck_store *st, const ck_audit_entry *e, size_t n, bool strict,
                              uint64_t *seqs_out, uint8_t (*hashes_out)[CK_AUDIT_HASH_BYTES]);

/*
 * ck_audit__pseudonym - the audit pseudonym of a subject.
 *
 *   salt = BLAKE2b-256(key = subject data key, "ckstore audit salt")
 *   out  = BLAKE2b-128(key = AUDIT subkey, "ckaudit-subject1" || salt || sid)
 *
 * Stable for a subject while its data key exists; once the data key is
 * destroyed (erasure), the salt is gone and the pseudonym can no longer be
 * recomputed from the subject id, even with the store's keys.
 */
void ck_audit__pseudonym(uint8_t out[CK_AUDIT_PSEUDONYM_BYTES], const ck_store *st,
                         const unsigned char subject_data_key[CK_KEY_BYTES],
                         const uint8_t sid[CK_SUBJECT_ID_BYTES]);

/*
 * ck_audit__key_event - log a key-slot change (action "key", strict), for
 * store.c after a slot change succeeded:
 *     rc = ck_audit__key_event(st, "ckstore", "passphrase", "set");
 * slot: "key_file" or "passphrase"; change: "set" or "removed". The
 * actor is "ckstore" until the slot API takes one. Returns what
 * ck_audit__append returns.
 */
int ck_audit__key_event(ck_store *st, const char *actor, const char *slot, const char *change);

/* The sequence number of the last entry of the log as this handle knows
 * it (0 when none could be read). No append may run meanwhile. */
uint64_t ck_audit__head_seq(ck_store *st);

/*
 * ck_audit__decode - bounded decoder of one entry (the msgpack bytes of a
 * frame, without its length and hash).
 *
 * out   out: the record; strings (NUL-terminated) and arrays live in
 *            `arena`. segment, offset and hash are left zero/NULL.
 * Every string is checked against its character set, every count against
 * its limit; unknown keys are skipped, duplicate or missing required keys
 * refused. Returns CK_OK; CK_EFORMAT; CK_ENOMEM.
 */
int ck_audit__decode(ck_audit_record *out, const uint8_t *p, size_t n, ck_arena *arena);

/* ------------------------------------------------------------------------ */
/* Test hooks. They act on one store only (no global state).                 */
/* ------------------------------------------------------------------------ */

typedef enum ck_audit_fail {
    CK_AUDIT_FAIL_NONE = 0,
    CK_AUDIT_FAIL_WRITE,   /* the next batch's write (or staging) fails before any byte */
    CK_AUDIT_FAIL_PARTIAL, /* the next batch's write (or staging) stops half-way, then fails */
    CK_AUDIT_FAIL_FSYNC    /* the next fsync fails */
} ck_audit_fail;

/* Make the next write or fsync of `st`'s audit log fail (once). */
void ck_audit__test_fail_next(ck_store *st, ck_audit_fail what);
/* Roll segments past `bytes` instead of 64 MiB (every process appending to
 * the store must use the same value). */
void ck_audit__test_segment_max(ck_store *st, uint64_t bytes);

/* Test hooks: stop staging (what is staged is moved to the segment first),
 * so that batched appends are written one write() each; and whether the
 * handle stages (the staging file's file system allows it). */
void ck_audit__test_stage_off(ck_store *st);
bool ck_audit__test_staging(ck_store *st);
/* Keep the flock (and what is staged) for `ns` after taking it, instead of
 * 2 ms. */
void ck_audit__test_lease(ck_store *st, uint64_t ns);

#endif /* CK_AUDIT_H */
