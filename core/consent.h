/*
 * consent.h - consent records, the consent index and contact logs
 * (internal API of consent.c, used by import, release and erasure).
 *
 * Records (docs/storage-format.md):
 *   consents: sid (16) || purpose tag (8) || seq (u32 BE) -> sealed record,
 *             append-only; the highest seq of a (subject, purpose) is its
 *             current state. Sealed under the subject's data key, AAD
 *             "ckc1" || store id || key || version.
 *   cindex:   purpose tag (8) || sid (16) -> state (u8) || expires (i64
 *             BE) || seq (u32 BE): the current state, in the clear, so that
 *             a release can refuse without decrypting anything and a
 *             segment visits only the subjects a purpose may concern. It is
 *             only ever trusted to REFUSE: a "granted" entry is confirmed
 *             against the sealed record it names before anything is
 *             released.
 *   contacts: sid (16) || channel (u8) -> sealed [override (int, -1 =
 *             none), [outbound contact times (Unix s), oldest first],
 *             last inbound contact (Unix s, 0 = none)]; logs written
 *             before inbound contacts existed have no 3rd element.
 * A purpose tag is BLAKE2b-64 under the blind-index subkey of the purpose's
 * name: purposes are named in no key.
 */
#ifndef CK_CONSENT_H
#define CK_CONSENT_H

#include "subject.h"

#define CK_PTAG_BYTES         8
#define CK_CONSENT_KEY_BYTES  (CK_SUBJECT_ID_BYTES + CK_PTAG_BYTES + 4)
#define CK_CINDEX_KEY_BYTES   (CK_PTAG_BYTES + CK_SUBJECT_ID_BYTES)
#define CK_CINDEX_VAL_BYTES   (1 + 8 + 4)
#define CK_CONSENT_TEXT_MAX   256  /* source, notice, collector, a recipient */
#define CK_CONSENT_RECIPS_MAX 64   /* recipients of one record */
#define CK_CONTACT_TIMES_MAX  1024 /* contact times kept per channel */

void ck_consent__ptag(uint8_t out[CK_PTAG_BYTES], const ck_store *st, const char *purpose,
                      size_t len);
/* The tag of a schema purpose: the one the schema snapshot computed when
 * the store loaded it, or computed now (a keyed hash: 2 % of a release). */
void ck_consent__ptag_of(uint8_t out[CK_PTAG_BYTES], const ck_store *st,
                         const ck_schema_purpose *p);

/* The current state of (sid, purpose), from the consent index. */
typedef struct ck_consent_cur {
    bool present;
    ck_consent_state state;
    int64_t expires; /* 0 = never */
    uint32_t seq;
} ck_consent_cur;

int ck_consent__current(ck_consent_cur *out, ck_store *st, MDB_txn *txn,
                        const uint8_t sid[CK_SUBJECT_ID_BYTES], const uint8_t ptag[CK_PTAG_BYTES]);
/* The same from the value `v` of the subject's consent index entry, already
 * read (a segment walking the index): CK_OK; CK_EINTEGRITY when malformed. */
int ck_consent__current_decode(ck_consent_cur *out, ck_store *st, const MDB_val *v);

/* A decoded record; strings NUL-terminated in the arena. */
typedef struct ck_consent_rec {
    const char *purpose;
    ck_consent_state state;
    int64_t at, expires;
    const char **fields; /* scope; nfields 0 = all the purpose's fields */
    uint32_t nfields;
    const char **recipients;
    uint32_t nrecipients;
    const char *source, *notice, *collector; /* NULL when absent */
    uint64_t recorded_ns;                    /* when the store recorded it (0 if unknown) */
    const char *tc_string;                   /* raw evidence: the TCF TC string the record was
                                                mapped from (ck_consent_tcf), NULL when absent */
    uint32_t seq;
} ck_consent_rec;

/* Decode the plaintext of a consent record (bounded; every string and
 * count checked). Strings are copied into the arena. CK_OK, CK_EFORMAT,
 * CK_ENOMEM. Exposed for the fuzz target. */
int ck_consent__decode(ck_consent_rec *out, const uint8_t *p, size_t n, ck_arena *arena);

/* Read record `seq` of (sid, ptag). CK_ENOTFOUND; CK_EINTEGRITY. */
int ck_consent__read(ck_consent_rec *out, ck_store *st, MDB_txn *txn,
                     const uint8_t sid[CK_SUBJECT_ID_BYTES], const uint8_t ptag[CK_PTAG_BYTES],
                     uint32_t seq, const unsigned char dk[CK_KEY_BYTES], ck_arena *arena);

/* Every record of a subject: `recs` in key order (grouped by purpose, each
 * group oldest first, so the last of a group is the purpose's current
 * state), `order` the history order - when the store recorded each record
 * (stable). Strings live in the arena given to ck_consent__list; the
 * arrays are the list's, wiped and freed by ck_consent__list_free. */
typedef struct ck_consent_list {
    ck_consent_rec *recs;
    size_t n, cap;
    size_t *order;
} ck_consent_list;

/* Read and open every consent record of `sid` (at most 100 000:
 * CK_ELIMIT). CK_OK; CK_EINTEGRITY; CK_ENOMEM. `out` is empty on failure. */
int ck_consent__list(ck_consent_list *out, ck_store *st, MDB_txn *txn,
                     const uint8_t sid[CK_SUBJECT_ID_BYTES], const unsigned char dk[CK_KEY_BYTES],
                     ck_arena *arena);
void ck_consent__list_free(ck_consent_list *l);
/* Is recs[i] the current (newest) record of its purpose? */
bool ck_consent__is_current(const ck_consent_list *l, size_t i);

/* Append a record as JSON, the shape of ck_consent_json: {"purpose",
 * "state","fields","recipients","expires","at","source","notice",
 * "collector","tc_string"} (absent optional members omitted), and with
 * `with_recorded` also "recorded", when the store recorded it (RFC 3339
 * with nanoseconds; omitted when unknown). CK_OK; CK_ENOMEM; CK_ELIMIT. */
int ck_consent__record_json(ck_buf *b, const ck_consent_rec *r, bool with_recorded);
/* Append {"current":{"<purpose>":{record},...},"history":[{record},...]}. */
int ck_consent__json(ck_buf *b, const ck_consent_list *l, bool with_recorded);
/* RFC 3339 UTC text of a time ("2024-03-02T08:30:15Z", a fraction when
 * nsec != 0), or "" when it has none (a year past 9999). */
void ck_consent__time_text(char out[CK_TS_TEXT_MAX], int64_t sec, int32_t nsec);

/* Does the record's scope name field `name` / its recipients `r`? */
bool ck_consent__scope_has(const ck_consent_rec *r, const char *name);
bool ck_consent__recipient_has(const ck_consent_rec *r, const char *recipient);

/* Validate `c` against the schema: CK_EINVAL with a message naming the
 * problem (never a value). `p_out` gets the purpose. */
int ck_consent__check(ck_store *st, const ck_schema *schema, const ck_consent *c,
                      const ck_schema_purpose **p_out);

/* Append a record (already checked) for subject `s` inside a write, and
 * update the consent index. `at` 0 means w->now. `seq_out` optional. */
int ck_consent__append(ck_wctx *w, ck_subj *s, const ck_schema_purpose *p, const ck_consent *c,
                       uint32_t *seq_out);
/* The same, with raw evidence sealed in the record: `tc`, `tc_len` bytes
 * (1..CK_TCF_TEXT_MAX) of a TC string already decoded, or NULL. */
int ck_consent__append_ev(ck_wctx *w, ck_subj *s, const ck_schema_purpose *p, const ck_consent *c,
                          const char *tc, size_t tc_len, uint32_t *seq_out);

/* Audit entry of a consent change (action "consent", strict). */
int ck_consent__audit(ck_store *st, const char *actor, const unsigned char dk[CK_KEY_BYTES],
                      const uint8_t sid[CK_SUBJECT_ID_BYTES], const char *purpose,
                      ck_consent_state state, const char *via);

const char *ck_consent__state_name(ck_consent_state s);
/* CK_OK and the state for "granted", "withdrawn", "refused", "objected"
 * (not "expired", which only ck_purge records; ck_consent__state_name
 * names all five). */
int ck_consent__state_parse(ck_consent_state *out, const char *s, size_t n);

/* ------------------------------------------------------------------------ */
/* Contacts                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct ck_contact_log {
    int32_t override; /* -1: none */
    uint32_t n;
    int64_t *times;       /* outbound contacts (they count toward the cap), in the arena */
    int64_t last_inbound; /* the customer's last inbound contact (Unix s), 0 = none */
} ck_contact_log;

/* The log of (sid, channel); an empty one (override -1, n 0) if none. */
int ck_contact__get(ck_contact_log *out, ck_store *st, MDB_txn *txn,
                    const uint8_t sid[CK_SUBJECT_ID_BYTES], ck_channel_type ch,
                    const unsigned char dk[CK_KEY_BYTES], ck_arena *arena);
/* Contacts of the log within [now - days, now]. */
uint32_t ck_contact__count(const ck_contact_log *log, int64_t now, uint32_t days);

/* The customer's last inbound contact (Unix s; 0 = none) on any channel
 * whose address field, for some purpose of `schema`, is field `field_id`:
 * retention of such a field counts from the later of its write time and
 * this (purge.c and release.c). 0 for a field that is no channel's. */
int ck_contact__last_inbound(int64_t *out, ck_store *st, MDB_txn *txn, const ck_schema *schema,
                             const uint8_t sid[CK_SUBJECT_ID_BYTES], uint16_t field_id,
                             const unsigned char dk[CK_KEY_BYTES], ck_arena *arena);

int ck_channel__parse(ck_channel_type *out, const char *s);

#endif /* CK_CONSENT_H */
