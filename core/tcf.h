/*
 * tcf.h - the IAB TCF v2 TC string decoder (tcf.c), for the modules that
 * map its signals onto ckstore purposes. docs/tcf.md describes what is
 * accepted and refused.
 *
 * A TC string is untrusted input: the decoder reads it with a bounded bit
 * reader, refuses anything malformed with a message naming the segment, the
 * bit and the field (never the string's content), and bounds the memory of
 * its result (CK_TCF_TEXT_MAX bytes of text, CK_TCF_IDS_MAX vendor ids in
 * all).
 *
 * Ids are 1-based throughout, as in the specification: purpose 1 is bit 0
 * of a purpose bitset, vendor 1 is the id 1 of an id list.
 */
#ifndef CK_TCF_H
#define CK_TCF_H

#include "internal.h"

/* Restriction types of a publisher restriction (RestrictionType, 2 bits;
 * 3 is undefined and refused). */
typedef enum ck_tcf_restriction_type {
    CK_TCF_NOT_ALLOWED = 0,     /* purpose flatly not allowed by the publisher */
    CK_TCF_REQUIRE_CONSENT = 1, /* require consent (flexible LI purposes) */
    CK_TCF_REQUIRE_LI = 2       /* require legitimate interest (flexible consent purposes) */
} ck_tcf_restriction_type;

/* Segments present besides the core one (ck_tcf.segments). */
#define CK_TCF_SEG_DISCLOSED 0x1u /* disclosed vendors, segment type 1 */
#define CK_TCF_SEG_ALLOWED   0x2u /* allowed vendors, segment type 2 */
#define CK_TCF_SEG_PUBLISHER 0x4u /* publisher TC, segment type 3 */

/* Highest purpose id of a restriction (6 bits; 0 is refused). */
#define CK_TCF_PURPOSE_ID_MAX 63u

/* A set of vendor ids: `n` ids, strictly ascending, each 1..65535. `ids` is
 * NULL when n is 0. `max_id` is the section's MaxVendorId (0 for an absent
 * segment and for the vendors of a publisher restriction, which have none):
 * every id is at most max_id when it is not 0. */
typedef struct ck_tcf_ids {
    uint16_t *ids;
    size_t n;
    uint16_t max_id;
} ck_tcf_ids;

/* One publisher restriction. Entries of the string with the same purpose
 * and type are merged into one (as the reference implementation does). */
typedef struct ck_tcf_restriction {
    uint8_t purpose_id; /* 1..CK_TCF_PURPOSE_ID_MAX */
    uint8_t type;       /* ck_tcf_restriction_type */
    ck_tcf_ids vendors; /* may be empty */
} ck_tcf_restriction;

/*
 * ck_tcf - a decoded TC string. Purpose-like sets are bitsets: bit (id - 1)
 * stands for id (purposes 1..24, special features 1..12, custom purposes
 * 1..num_custom_purposes); test them with ck_tcf__bit. Sets of absent
 * segments are empty.
 */
typedef struct ck_tcf {
    uint8_t version;       /* always 2 */
    uint64_t created;      /* deciseconds since 1970-01-01T00:00:00Z (36 bits) */
    uint64_t last_updated; /* same */
    uint16_t cmp_id;
    uint16_t cmp_version;
    uint8_t consent_screen;
    char consent_language[3]; /* two letters A-Z and a NUL, e.g. "EN" */
    uint16_t vendor_list_version;
    uint8_t policy_version;
    bool is_service_specific;
    bool use_non_standard_texts;
    uint32_t special_feature_optins; /* 12 bits */
    uint32_t purpose_consents;       /* 24 bits */
    uint32_t purpose_li;             /* 24 bits: legitimate interest established */
    bool purpose_one_treatment;
    char publisher_cc[3]; /* two letters A-Z and a NUL, e.g. "DE" */
    ck_tcf_ids vendor_consents;
    ck_tcf_ids vendor_li;
    ck_tcf_restriction *restrictions; /* by purpose id, then type */
    size_t nrestrictions;

    unsigned int segments; /* CK_TCF_SEG_* bits */
    ck_tcf_ids vendors_disclosed;
    ck_tcf_ids vendors_allowed;
    uint32_t pub_consents; /* 24 bits */
    uint32_t pub_li;       /* 24 bits */
    uint8_t num_custom_purposes;
    uint64_t custom_consents; /* num_custom_purposes bits */
    uint64_t custom_li;
} ck_tcf;

/* Whether bitset `set` holds `id` (1-based). False for id 0 or above 64. */
static inline bool ck_tcf__bit(uint64_t set, unsigned int id)
{
    return id >= 1 && id <= 64 && ((set >> (id - 1)) & 1u) != 0;
}

/*
 * ck_tcf__decode - decode a TC string.
 *
 * out     out: the decoded string; free with ck_tcf__free. NULL on failure.
 * tc      in:  `len` bytes (no NUL needed), at most CK_TCF_TEXT_MAX.
 * err     out: on CK_EINVAL / CK_ELIMIT, why (e.g. "core segment: truncated
 *              at bit 213 (vendor consents: MaxVendorId)"); "" on success.
 *              Positions and field names only, never the string's content.
 *              May be NULL.
 *
 * Returns CK_OK; CK_EINVAL (malformed); CK_ELIMIT (longer than
 * CK_TCF_TEXT_MAX, or more than CK_TCF_IDS_MAX vendor ids in all);
 * CK_ENOMEM.
 */
int ck_tcf__decode(ck_tcf **out, const char *tc, size_t len, char *err, size_t err_max);

/* Release a decoded string (wiped first). NULL is a no-op. */
void ck_tcf__free(ck_tcf *t);

/* Whether `s` holds vendor `id` (binary search). */
bool ck_tcf__has(const ck_tcf_ids *s, unsigned int id);

/* The restriction types that apply to vendor `vendor_id` for purpose
 * `purpose_id`: bit (1 << type) for each ck_tcf_restriction_type; 0 when
 * none. Several bits may be set: the string does not forbid it, and the
 * caller decides which wins. */
unsigned int ck_tcf__restrictions_for(const ck_tcf *t, unsigned int purpose_id,
                                      unsigned int vendor_id);

/* RFC 3339 UTC text of a decisecond timestamp: "2024-03-01T12:00:00Z", or
 * with a tenth, "2024-03-01T12:00:00.1Z". out_max >= CK_TS_TEXT_MAX.
 * CK_OK; CK_EINVAL when out_max is too small or the value has more than 36
 * bits (`out` then holds "" when out_max > 0). */
int ck_tcf__time_text(char *out, size_t out_max, uint64_t deciseconds);

/*
 * ck_tcf__to_json - the JSON text of a decoded string (docs/tcf.md): one
 * object, compact, keys in a fixed order (the field names of the IAB
 * reference implementation).
 *
 * out out: NUL-terminated text in a block from ck_out__alloc (release with
 *          ck_free); NULL on failure.
 * Returns CK_OK or CK_ENOMEM.
 */
int ck_tcf__to_json(char **out, const ck_tcf *t);

#endif /* CK_TCF_H */
