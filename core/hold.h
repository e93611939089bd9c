/*
 * hold.h - legal holds (internal API of hold.c, used by erase.c).
 *
 * A purpose with basis legal_obligation may declare a hold (schema.h,
 * ck_schema_hold): when a subject is erased, the values it holds of the
 * hold's fields are kept for `days` days in a hold of their own, so that
 * the company can meet the obligation (invoices kept for the tax
 * authorities) while everything else of the customer is erased.
 *
 * A hold shares nothing with the subject: its id is 16 random bytes, its
 * values are sealed under a random key of its own (a hold key), and it
 * holds no subject id, ref, index entry or data key. Both records live in
 * the keyring environment, so that the erasure's one keyring commit writes
 * the hold and destroys the subject's data key together: a crash leaves
 * either the subject whole, or the hold made and the key gone - never a
 * subject erased without its hold.
 *
 *   hold_keys: hold id (16) -> [u8 1][nonce 24][hold key sealed under the
 *              KEK][tag 16] (73 bytes), AAD "ckhk" || store id || hold id
 *              || version
 *   holds:     hold id (16) -> [u8 1][until, i64 BE][nonce 24][sealed
 *              msgpack][tag 16] under the hold key, AAD "ckh1" || store id
 *              || hold id || version || until; plaintext
 *              [1, purpose, basis, description, kept_at,
 *               [[field name, type, value (bin: its codec encoding)], ...]]
 *
 * `until` is in the clear so that expiry finds the holds due without a
 * key; it is bound by the AAD, so changing it makes the hold unreadable
 * and expiry refuses it.
 */
#ifndef CK_HOLD_H
#define CK_HOLD_H

#include "audit.h"
#include "subject.h"

#define CK_HOLD_ID_BYTES       16
#define CK_HOLD_RECORD_VERSION 1
/* The fields of one hold: at most the fields of a purpose. */
#define CK_HOLD_FIELDS_MAX CK_SCHEMA_FIELDS_MAX

/* A hold made by an erasure, staged in memory until the erasure's keyring
 * transaction writes it. The strings point into the arena given to
 * ck_hold__make; `rec` is the caller's to free with ck_hold__fini. */
typedef struct ck_hold_new {
    uint8_t id[CK_HOLD_ID_BYTES];
    uint8_t pn[CK_AUDIT_PSEUDONYM_BYTES];    /* the hold's audit pseudonym */
    uint8_t keyrec[CK_KEYRING_RECORD_BYTES]; /* its key, wrapped */
    uint8_t *rec;                            /* its sealed record (heap) */
    size_t rec_len;
    int64_t until;
    const char *purpose;
    const char *description;
    ck_basis basis;
    const char **fields; /* names of the fields kept, in the hold's order */
    uint32_t nfields;
} ck_hold_new;

/*
 * ck_hold__make - the hold purpose `p` makes of the subject `s` opened in
 * the write `w` (its data key loaded): the values it holds of p's hold
 * fields, read, sealed under a fresh random key with a fresh random id,
 * kept until w->now + p->hold.days days.
 * made out: false when the subject holds none of the fields (`out` is
 *           then empty and needs no ck_hold__fini).
 * Returns CK_OK; CK_EINTEGRITY / CK_EFORMAT (a value that does not open);
 * CK_ELIMIT; CK_ENOMEM.
 */
int ck_hold__make(ck_hold_new *out, bool *made, ck_wctx *w, const ck_subj *s,
                  const ck_schema_purpose *p, ck_arena *arena);
void ck_hold__fini(ck_hold_new *h);

/* Write a staged hold (its key and its record) in `ktxn`, a keyring write
 * transaction. CK_EINTERNAL if its id is taken (a broken RNG). */
int ck_hold__put(ck_store *st, MDB_txn *ktxn, const ck_hold_new *h);

/* Decode a hold record's plaintext (what opens under the hold key) and
 * write the JSON ck_hold_get would give for it, as a hold `id_hex` kept
 * until `until`, into the secure buffer `out`. For the fuzz target
 * fuzz_hold; ck_hold_get goes through the same two steps.
 * CK_OK; CK_EFORMAT (malformed); CK_ENOMEM. */
int ck_hold__plain_json(ck_buf *out, const uint8_t *pt, size_t n, int64_t until, const char *id_hex,
                        ck_arena *a);

/* How many holds ck_hold_expire would destroy now (until <= the store's
 * clock), read from their clear `until` without a key: a purge's dry run.
 * CK_OK; CK_EINTEGRITY (a malformed record); CK_EIO. */
int ck_hold__count_due(uint64_t *out, ck_store *st);

#endif /* CK_HOLD_H */
