/*
 * schema.h - the schema: fields and purposes (internal API of schema.c).
 *
 * A schema is an immutable, reference-counted snapshot. The store keeps the
 * current one (st->schema); a module that needs it asks for it inside its
 * own transaction with ck_schema__get, which notices when another process
 * applied a newer version, and releases it with ck_schema__release:
 *
 *     ck_schema *s;
 *     CK_GUARD(ck_schema__get(&s, st, txn));
 *     const ck_schema_purpose *p = ck_schema__purpose(s, name, name_len);
 *     ...
 *     ck_schema__release(s);
 *
 * Nothing in a snapshot ever changes once it is built, so any number of
 * threads may read one without a lock. See docs/schema.md for the file
 * shape and every rule, and docs/storage-format.md for the stored record.
 */
#ifndef CK_SCHEMA_H
#define CK_SCHEMA_H

#include "store.h"

#include <stdatomic.h>

/* ------------------------------------------------------------------------ */
/* Limits (declared maxima, enforced by the JSON loader and the decoder)     */
/* ------------------------------------------------------------------------ */

#define CK_SCHEMA_NAME_MAX        64         /* field and purpose names, bytes */
#define CK_SCHEMA_TEXT_MAX        1024       /* description and benefit, bytes */
#define CK_SCHEMA_FIELDS_MAX      1024       /* fields of one schema */
#define CK_SCHEMA_PURPOSES_MAX    256        /* purposes of one schema */
#define CK_SCHEMA_BAND_EDGES_MAX  64         /* edges of one "band:" minimisation */
#define CK_SCHEMA_PREFIX_MAX      32         /* N of "prefix:N" */
#define CK_SCHEMA_RETENTION_MAX   36500u     /* retention_days (100 years) */
#define CK_SCHEMA_CAP_COUNT_MAX   1000u      /* channel cap: contacts per window */
#define CK_SCHEMA_CAP_DAYS_MAX    3660u      /* channel cap: window in days */
#define CK_SCHEMA_JSON_MAX        (4u << 20) /* schema file, bytes */
#define CK_SCHEMA_TCF_PURPOSE_MAX 24u        /* TCF purpose ids: 1..24 */
#define CK_SCHEMA_TCF_FEATURE_MAX 12u        /* TCF special feature ids: 1..12 */
#define CK_SCHEMA_TCF_VENDOR_MAX  65535u     /* TCF vendor ids: 1..65535 */
#define CK_SCHEMA_HOLD_DAYS_MAX   36500u     /* legal hold: days kept after an erasure */
/* Field ids are u16; 0 is never used. Once 65535 ids have been handed out
 * (ids are never reused) new fields are refused with CK_ELIMIT. */
#define CK_SCHEMA_FIELD_ID_MAX 65535u

/* ------------------------------------------------------------------------ */
/* The snapshot                                                              */
/* ------------------------------------------------------------------------ */

/* The numbers of these enums are stored in schema records: never reuse. */
typedef enum ck_sensitivity {
    CK_SENS_PUBLIC = 1,
    CK_SENS_PERSONAL = 2,
    CK_SENS_SENSITIVE = 3,
    CK_SENS_SPECIAL = 4 /* GDPR art. 9: released only with explicit consent */
} ck_sensitivity;

typedef enum ck_basis {
    CK_BASIS_CONSENT = 1,
    CK_BASIS_CONTRACT = 2,
    CK_BASIS_LEGAL_OBLIGATION = 3,
    CK_BASIS_LEGITIMATE_INTEREST = 4
} ck_basis;

typedef enum ck_min_kind {
    CK_MIN_NONE = 0,
    CK_MIN_YEAR = 1,   /* date/timestamp -> its year */
    CK_MIN_PREFIX = 2, /* string -> its first N characters */
    CK_MIN_DOMAIN = 3, /* string (e-mail) -> the part after the last '@' */
    CK_MIN_BAND = 4    /* int/float -> the band between two edges */
} ck_min_kind;

typedef enum ck_channel_type {
    CK_CHANNEL_NONE = 0,
    CK_CHANNEL_EMAIL = 1,
    CK_CHANNEL_SMS = 2,
    CK_CHANNEL_PHONE = 3,
    CK_CHANNEL_POST = 4
} ck_channel_type;

typedef struct ck_schema_field {
    uint16_t id;      /* stable: kept while the field keeps its name and type */
    const char *name; /* NUL-terminated, 1..CK_SCHEMA_NAME_MAX bytes */
    size_t name_len;
    ck_type type;
    ck_sensitivity sensitivity;
    bool identifying;        /* lookups through a blind index; string fields only */
    uint32_t retention_days; /* 0 = kept until erased */
} ck_schema_field;

/* How a purpose releases one of its fields. */
typedef struct ck_schema_min {
    ck_min_kind kind;
    uint32_t prefix;      /* CK_MIN_PREFIX: N, 1..CK_SCHEMA_PREFIX_MAX */
    const int64_t *edges; /* CK_MIN_BAND: strictly ascending */
    uint32_t nedges;      /*   1..CK_SCHEMA_BAND_EDGES_MAX */
} ck_schema_min;

typedef struct ck_schema_channel {
    ck_channel_type type; /* CK_CHANNEL_NONE: the purpose has no channel */
    uint16_t field_id;    /* a string field among the purpose's fields */
    uint32_t cap_count;   /* at most cap_count contacts ... */
    uint32_t cap_days;    /* ... in any window of cap_days days */
} ck_schema_channel;

/* The IAB TCF signals a purpose stands for ("tcf" in the file; docs/tcf.md,
 * "Mapping onto purposes"). Only a consent or legitimate-interest purpose
 * may declare them. When `set` is false every other member is 0. */
typedef struct ck_schema_tcf {
    bool set;
    uint32_t purposes;         /* TCF purposes: bit (id - 1), ids 1..24; not 0 */
    uint16_t special_features; /* bit (id - 1), ids 1..12; may be 0 */
    uint16_t vendor;           /* the vendor whose signals count; 0 = none */
    bool publisher;            /* the publisher's signals count (never with a vendor) */
} ck_schema_tcf;

/* The legal hold of a purpose ("hold" in the file): the fields an erasure
 * keeps, for `days` days, in a hold of their own (hold.c). Only a
 * legal_obligation purpose may declare one. No hold: nfields is 0 and
 * every other member is 0/NULL. */
typedef struct ck_schema_hold {
    uint32_t nfields;
    const uint16_t *field_ids; /* among the purpose's fields, no duplicates */
    uint32_t days;             /* 1..CK_SCHEMA_HOLD_DAYS_MAX */
} ck_schema_hold;

typedef struct ck_schema_purpose {
    const char *name; /* NUL-terminated, e.g. "marketing.email" */
    size_t name_len;
    ck_basis basis;
    const char *description; /* NUL-terminated plain language, 1..1024 bytes */
    const char *benefit;     /* idem: what the customer gains */
    uint32_t nfields;
    const uint16_t *field_ids; /* as declared, no duplicates */
    const ck_schema_min *min;  /* parallel to field_ids */
    ck_schema_channel channel;
    ck_schema_tcf tcf;
    ck_schema_hold hold;
    /* The purpose tag (consent.h), computed once for a schema the store
     * loaded or applied (has_ptag); ck_consent__ptag_of reads it. */
    bool has_ptag;
    uint8_t ptag[8];
} ck_schema_purpose;

typedef struct ck_schema {
    atomic_uint refs;
    uint32_t version;       /* 1 for the first schema applied to a store */
    uint32_t next_field_id; /* the id the next new field gets */
    uint32_t nfields;
    const ck_schema_field *fields; /* sorted by name */
    const ck_schema_field **by_id; /* the same, sorted by id */
    uint32_t npurposes;
    const ck_schema_purpose *purposes; /* sorted by name */
    ck_arena arena;                    /* owns everything above */
} ck_schema;

/* The store's part (st->schema). */
struct ck_schema_state {
    pthread_mutex_t lock; /* guards `cur` (the swap, not the snapshot) */
    ck_schema *cur;       /* NULL while no schema was applied */
};

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                  */
/* ------------------------------------------------------------------------ */

/* Take one more reference. */
void ck_schema__retain(ck_schema *s);
/* Drop a reference; the last one frees the snapshot. NULL is a no-op. */
void ck_schema__release(ck_schema *s);

/*
 * ck_schema__get - the schema as seen by `txn` (a transaction of the data
 * environment, read or write), with a reference for the caller.
 *
 * Reads the "current" version in `txn` (one mdb_get); when it is the one
 * the store holds, that snapshot is returned at once; otherwise (another
 * process applied a newer schema) the record is loaded, opened and decoded,
 * and becomes the store's if it is newer than the one held. Thread-safe.
 *
 * Returns CK_OK; CK_ENOTFOUND (with a message) if no schema was applied;
 * CK_EINTEGRITY if the stored record does not authenticate or decode;
 * CK_ENOMEM. *out is NULL on failure.
 */
int ck_schema__get(ck_schema **out, ck_store *st, MDB_txn *txn);

/* ------------------------------------------------------------------------ */
/* Lookups: O(log n). The pointers live as long as the snapshot.             */
/* ------------------------------------------------------------------------ */

const ck_schema_field *ck_schema__field(const ck_schema *s, const char *name, size_t len);
const ck_schema_field *ck_schema__field_by_id(const ck_schema *s, uint16_t id);
const ck_schema_purpose *ck_schema__purpose(const ck_schema *s, const char *name, size_t len);
/* The position of field `id` in p->field_ids, or -1 when the purpose does
 * not declare it (O(n) in the purpose's fields, which are few). */
int ck_schema__purpose_field(const ck_schema_purpose *p, uint16_t id);

/* Names of the enums, as the JSON file spells them. */
const char *ck_schema__type_name(ck_type t);
const char *ck_schema__sensitivity_name(ck_sensitivity s);
const char *ck_schema__basis_name(ck_basis b);
const char *ck_schema__channel_name(ck_channel_type c);

/* ------------------------------------------------------------------------ */
/* Building, encoding, decoding                                             */
/* ------------------------------------------------------------------------ */

/*
 * ck_schema__from_json - parse and validate a schema file.
 *
 * out     out: the new snapshot (refs 1), NULL on failure.
 * base    in:  the current schema, or NULL. A field whose name and type
 *              match a field of `base` keeps its id; every other field gets
 *              a fresh id from base->next_field_id (1 without a base), in
 *              the order of the file. version = base->version + 1 (or 1).
 * json    in:  `len` bytes of UTF-8 JSON (no NUL needed).
 * err     out: on CK_EINVAL/CK_ELIMIT, "path: problem" (e.g.
 *              `fields.email.type: unknown type "strng" (...)`); never a
 *              customer value (a schema holds none).
 *
 * Returns CK_OK; CK_EINVAL (invalid file); CK_ELIMIT (field ids exhausted,
 * file too large); CK_ENOMEM.
 */
int ck_schema__from_json(ck_schema **out, const ck_schema *base, const char *json, size_t len,
                         char *err, size_t err_max);

/* Append the schema's JSON text (the file shape plus "version", compact,
 * fields and purposes in name order) to `out`. CK_OK or CK_ENOMEM. */
int ck_schema__to_json(ck_buf *out, const ck_schema *s);

/* One purpose as the schema's JSON gives it ({"basis","description",
 * "benefit","fields","minimize","channel","tcf"}): a new Jansson object
 * (NULL or incomplete when out of memory, and then *ok is set false). */
struct json_t;
struct json_t *ck_schema__purpose_json(const ck_schema *s, const ck_schema_purpose *p, bool *ok);

/* Append the msgpack record of `s` (see docs/storage-format.md) to `out`.
 * The encoding is canonical: two snapshots with the same content encode to
 * the same bytes. CK_OK or CK_ENOMEM. */
int ck_schema__encode(ck_buf *out, const ck_schema *s);

/*
 * ck_schema__decode - decode a record made by ck_schema__encode. The input
 * is untrusted (bounded reader; every limit and cross-reference of the JSON
 * loader is checked again), so the snapshot is always consistent.
 * Returns CK_OK; CK_EFORMAT; CK_ELIMIT; CK_ENOMEM. *out NULL on failure.
 */
int ck_schema__decode(ck_schema **out, const uint8_t *p, size_t n);

#endif /* CK_SCHEMA_H */
