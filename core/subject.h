/*
 * subject.h - subjects: ids, data keys, blind indexes, writes of fields
 * (internal API of subject.c, used by import, consent, release, erase).
 *
 * Two LMDB environments are involved in a write that creates a subject: the
 * data environment (subject record, values, index entries) and the keyring
 * (the subject's wrapped data key). They cannot commit atomically together,
 * so the order is fixed: the data write transaction is opened first; new
 * data keys are staged in memory (ck_wctx) and written to the keyring in a
 * transaction of its own just before the data transaction commits
 * (ck_wctx__commit_keys). A crash between the two commits leaves a data key
 * with no data (harmless, unreachable), never data without its key.
 * Every path takes the data write lock before the keyring's, never the
 * reverse, so the two cannot deadlock.
 */
#ifndef CK_SUBJECT_H
#define CK_SUBJECT_H

#include "ident.h"
#include "schema.h"

#include <errno.h>

/* LMDB put with the fault-injection hook ("mdb_put"). */
static inline int ck_mdb__put(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags)
{
    return ck_fault__hit("mdb_put") ? EIO : mdb_put(txn, dbi, k, v, flags);
}

/* ------------------------------------------------------------------------ */
/* Write context                                                             */
/* ------------------------------------------------------------------------ */

typedef struct ck_wctx {
    ck_store *st;
    MDB_txn *txn; /* data write transaction */
    const ck_schema *schema;
    MDB_txn *ktxn;          /* keyring read transaction, opened on first need */
    ck_buf scratch;         /* secure: plaintext encodings */
    ck_buf norm;            /* secure: normalised identifying values */
    ck_arena arena;         /* scratch of one operation (decoded values) */
    uint8_t *new_sids;      /* subjects created in this write ... */
    unsigned char *new_dks; /* ... and their data keys (guarded) */
    size_t n_new, cap_new;
    unsigned char *dk; /* guarded: the data key of the subject being written */
    int64_t now;
    /* Write cursors on the values and consents databases, opened on first
     * use (ck_wctx__cursor) and closed by ck_wctx__fini. A subject's values
     * are adjacent, and so are its consent records: written one after the
     * other through the same cursor, most of them land on the page the
     * cursor is on, without a descent from the root. */
    MDB_cursor *cur_values, *cur_consents;
    /* Cursors on the subjects and index databases: the look-up of a
     * subject (or of a ref) leaves the cursor where its record (or its
     * index entry) is, or would go, and the write that follows puts it
     * there without another descent. */
    MDB_cursor *cur_subjects, *cur_index;
} ck_wctx;

int ck_wctx__init(ck_wctx *w, ck_store *st, MDB_txn *txn, const ck_schema *schema);
/* End the keyring read, close the cursors, wipe and free everything. Call
 * it before w->txn commits or aborts: LMDB frees the cursors of a write
 * transaction when it ends, so they must be closed before, not after. */
void ck_wctx__fini(ck_wctx *w);
/* *slot (one of the w->cur_* cursors) open on `dbi` of w->txn: opened on
 * the first call, kept until ck_wctx__fini. */
int ck_wctx__cursor(ck_wctx *w, MDB_dbi dbi, MDB_cursor **slot);
/* Forget the subjects staged since `mark` (a line rolled back). */
void ck_wctx__rollback_new(ck_wctx *w, size_t mark);
/* Write the staged data keys to the keyring (its own write transaction;
 * the keyring read transaction is ended first). Call right before the data
 * transaction commits. */
int ck_wctx__commit_keys(ck_wctx *w);

/* ------------------------------------------------------------------------ */
/* One subject being written                                                 */
/* ------------------------------------------------------------------------ */

#define CK_SUBJECT_INDEX_MAX 4096 /* index entries of one subject */
/* A tombstone tag: BLAKE2b-128(TOMBSTONE subkey, "cktb1" || kind ||
 * field id || normalised value). Keyed apart from the blind index, so the
 * tombstones left by an erasure share no byte with the index entries that
 * vanished with the subject. */
#define CK_TOMB_BYTES 16
/* An index entry a subject record lists: the index key, then the tombstone
 * tag of the same value (zero for aliases, which leave no tombstone). */
#define CK_IX_ENTRY (CK_INDEX_KEY_BYTES + CK_TOMB_BYTES)

void ck_subject__tomb_tag(uint8_t out[CK_TOMB_BYTES], const ck_store *st, ck_index_kind kind,
                          uint16_t field_id, const uint8_t *norm, size_t n);
/* The tombstone tag of a subject id: the same hash with kind 0 (no index
 * kind) and field id 0 over the 16 bytes of the id. An erasure leaves it
 * so that a restore recognises exactly that subject in an older backup. */
void ck_subject__tomb_tag_sid(uint8_t out[CK_TOMB_BYTES], const ck_store *st,
                              const uint8_t sid[CK_SUBJECT_ID_BYTES]);

typedef struct ck_subj {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    const unsigned char *dk; /* its data key (guarded memory of the wctx) */
    int64_t created;
    uint8_t (*ix)[CK_IX_ENTRY]; /* index entries it holds (heap) */
    uint32_t nix, cap;
    bool is_new, dirty;
} ck_subj;

void ck_subj__fini(ck_subj *s);
/* A new subject: random id, data key staged in `w`. */
int ck_subject__new(ck_wctx *w, ck_subj *s);
/* An existing subject: its data key and record. CK_ENOTFOUND. */
int ck_subject__open(ck_wctx *w, ck_subj *s, const uint8_t sid[CK_SUBJECT_ID_BYTES]);
/* Read-only: decode the record of `sid` with its data key `dk` into `s`
 * (created, index entries; s->dk = dk), outside any write. Release with
 * ck_subj__fini. CK_ENOTFOUND; CK_EINTEGRITY. */
int ck_subject__read(ck_subj *s, ck_store *st, MDB_txn *txn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                     const unsigned char dk[CK_KEY_BYTES], ck_arena *arena);
/* Write the subject record if it changed. */
int ck_subject__save(ck_wctx *w, ck_subj *s);

/* Point a unique index (CK_INDEX_REF, CK_INDEX_ALIAS) at the subject.
 * `raw` is normalised (trimmed) first. CK_EEXIST when another subject
 * holds it; CK_OK when this one already does. */
int ck_subject__index_unique(ck_wctx *w, ck_subj *s, ck_index_kind kind, const char *raw, size_t n);
/* Point the unique index entry `key` (as ck_subject__unique_key makes it;
 * `tomb` its tombstone tag for a ref, NULL for an alias) at `s`, knowing
 * that no subject holds it: the caller found it free in w->txn
 * (ck_subject__find_unique gave CK_ENOTFOUND) and wrote no index entry
 * since. */
int ck_subject__index_unique_new(ck_wctx *w, ck_subj *s, const uint8_t key[CK_INDEX_KEY_BYTES],
                                 const uint8_t *tomb);
/* Remove an alias. CK_ENOTFOUND when the subject does not hold it. */
int ck_subject__index_remove(ck_wctx *w, ck_subj *s, ck_index_kind kind, const char *raw, size_t n);

/* Set (v != NULL) or delete (v == NULL) field `f`: value sealed, blind
 * index of an identifying field kept in step. `v` must have f's type. */
int ck_subject__set_field(ck_wctx *w, ck_subj *s, const ck_schema_field *f, const ck_value *v);
/* The index key and tombstone tag of the value of identifying field
 * `field_id` whose normalised form (ck_ident__normalize with
 * ck_ident__norm_kind_for the field's name) is the n bytes at `norm`. */
void ck_subject__field_keys(uint8_t key[CK_INDEX_KEY_BYTES], uint8_t tomb[CK_TOMB_BYTES],
                            const ck_store *st, uint16_t field_id, const uint8_t *norm, size_t n);
/* ck_subject__set_field with v != NULL whose index key and tombstone tag,
 * if `f` is identifying, the caller made with ck_subject__field_keys
 * (the import, which normalises every value when it checks a line, does
 * not normalise and hash it a second time). Ignored for other fields. */
int ck_subject__set_field_keyed(ck_wctx *w, ck_subj *s, const ck_schema_field *f, const ck_value *v,
                                const uint8_t key[CK_INDEX_KEY_BYTES],
                                const uint8_t tomb[CK_TOMB_BYTES]);

/* The index key of a ref (kind REF) or alias, normalised: CK_EINVAL when
 * empty or too long. `tomb`, if not NULL, receives its tombstone tag. */
int ck_subject__unique_key(uint8_t out[CK_INDEX_KEY_BYTES], uint8_t *tomb, ck_store *st,
                           ck_index_kind kind, const char *raw, size_t n, ck_buf *norm);

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * ck_subject__resolve - the subject `who` names, as seen by `txn` (a data
 * transaction, read or write). For CK_BY_PSEUDONYM the context is
 * who->purpose/recipient, or ctx_purpose/ctx_recipient when who->purpose
 * is NULL. `norm` is a secure scratch buffer.
 * CK_OK; CK_ENOTFOUND; CK_EAMBIGUOUS; CK_EINVAL.
 */
int ck_subject__resolve(uint8_t sid[CK_SUBJECT_ID_BYTES], ck_store *st, MDB_txn *txn,
                        const ck_schema *schema, const ck_who *who, const char *ctx_purpose,
                        const char *ctx_recipient, ck_buf *norm);

/* The subject that unique index key `key` (a ref's or an alias's, as
 * ck_subject__unique_key makes it) points at, as seen by w->txn, looked
 * up through w->cur_index; `what` ("ref", "alias") names it in the
 * message. CK_OK; CK_ENOTFOUND; CK_EINTEGRITY. */
int ck_subject__find_unique(uint8_t sid[CK_SUBJECT_ID_BYTES], ck_wctx *w,
                            const uint8_t key[CK_INDEX_KEY_BYTES], const char *what);

/* The data key of `sid` through a keyring read transaction. */
int ck_subject__data_key(ck_store *st, MDB_txn *ktxn, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                         unsigned char dk[CK_KEY_BYTES]);
/* The same through a cursor on the keyring database (ck_keyring__get_at). */
int ck_subject__data_key_at(ck_store *st, MDB_cursor *kcur, const uint8_t sid[CK_SUBJECT_ID_BYTES],
                            unsigned char dk[CK_KEY_BYTES]);

/* erase.c: is `tag` a tombstone of an erased subject? */
int ck_erase__tombstoned(bool *out, ck_store *st, MDB_txn *txn, const uint8_t tag[CK_TOMB_BYTES]);

/* erase.c: erase subject `sid` again after a restore, exactly as ck_erase
 * does (audited with reason CK_ERASE_REPLAY_REASON, data key destroyed and
 * scrubbed before the data is deleted), except that existing tombstones
 * keep their time. Also finishes an erasure that lost its key only.
 * CK_OK; CK_ENOTFOUND; and the errors of ck_erase. */
#define CK_ERASE_REPLAY_REASON "restore-replay"
int ck_erase__replay(ck_store *st, const uint8_t sid[CK_SUBJECT_ID_BYTES], const char *actor);

/* Run `fn` in a data write transaction with a wctx and the current schema
 * (CK_ENOTFOUND when none was applied). The staged keys are committed
 * after `fn` succeeds, before the data commit. */
typedef int (*ck_wfn)(ck_wctx *w, void *ctx);
int ck_subject__write(ck_store *st, ck_wfn fn, void *ctx);

#endif /* CK_SUBJECT_H */
