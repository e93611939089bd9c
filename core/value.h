/*
 * value.h - typed values in and out of JSON and command-line text, and the
 * minimisations a purpose declares (internal API of value.c).
 *
 * Every value this module produces passes ck_codec__check, so what the
 * store writes and what it releases obey the same rules. Error texts name
 * the problem and never quote the value: values are customer data.
 * docs/schema.md ("Values in JSON", "Minimisation") is the user-facing
 * description of what is accepted and what is released.
 */
#ifndef CK_VALUE_H
#define CK_VALUE_H

#include "schema.h" /* ck_schema_min, ck_min_kind */

#include <jansson.h>

/*
 * ck_value__from_json - a JSON value -> a typed value of `type`, for writes
 * (import lines, ck_put_json). Accepted JSON per type:
 *
 *   string    a JSON string, valid UTF-8, at most CK_VALUE_MAX_BYTES, no NUL
 *   int       a JSON integer; or a string holding a strict decimal integer
 *             ("-12"; no '+', no spaces, no leading zeros except "0"),
 *             within int64
 *   float     a JSON real or integer (an integer is converted to the nearest
 *             double); or a string holding a number in JSON's own syntax
 *             ("-1.5e3"; no '+', no leading zeros, no "inf" or "nan") that
 *             is finite as a double (a number too small becomes 0 or a
 *             subnormal, as Jansson parses reals)
 *   bool      true / false; or the strings "true" / "false"
 *   date      "YYYY-MM-DD", a real calendar date in years 0001..9999
 *   timestamp RFC 3339 (ck_ts__parse): "2024-11-24T19:04:17Z",
 *             "2024-11-24T21:04:17.25+02:00"
 *   bytes     standard base64 with padding, no whitespace; at most
 *             CK_VALUE_MAX_BYTES once decoded
 *   list      a JSON array of strings: at most CK_LIST_MAX_ITEMS items,
 *             together at most CK_VALUE_MAX_BYTES, no NUL
 *
 * out   out: the value; all zero on failure. Strings, bytes and list items
 *            are copied into `arena`, which may be NULL for the types that
 *            need no memory (int, float, bool, date, timestamp).
 * err   out: on failure, a short reason ("expected a date YYYY-MM-DD",
 *            "not a real calendar date", "integer out of range", "item 3 is
 *            not a string", "invalid base64"; items count from 0); "" on
 *            success. Never the value. May be NULL when err_max is 0.
 *
 * Returns CK_OK; CK_EINVAL (wrong JSON kind, bad text, unknown type, no
 * arena where one is needed); CK_ELIMIT (a string, bytes or list too big);
 * CK_ENOMEM.
 */
int ck_value__from_json(ck_value *out, ck_type type, const json_t *j, ck_arena *arena, char *err,
                        size_t err_max);

/*
 * ck_value__from_text - command-line text (the VALUE of FIELD=VALUE) -> a
 * typed value: `n` bytes at `s` (no NUL needed), read as the content of a
 * JSON string would be for every type (a string must then be valid UTF-8),
 * except list, which takes the text as a JSON array ("[\"a\",\"b\"]", at
 * most 8 MiB of text). Same `out`, `err` and return codes as
 * ck_value__from_json.
 */
int ck_value__from_text(ck_value *out, ck_type type, const char *s, size_t n, ck_arena *arena,
                        char *err, size_t err_max);

/*
 * ck_value__to_json - a typed value -> a new JSON reference (the caller
 * json_decref's it). date -> "YYYY-MM-DD"; timestamp -> its canonical RFC
 * 3339 text with the offset it was written with ("...Z", "...+02:00"), a
 * fraction only when nsec != 0, without trailing zeros; bytes -> base64 with
 * padding; list -> array of strings; int -> integer; float -> real; bool ->
 * true / false. ck_value__from_json of the result gives `v` back.
 *
 * `v` must pass ck_codec__check (values of the store and of from_json do).
 * Returns NULL when out of memory, or when `v` is not a valid value.
 */
json_t *ck_value__to_json(const ck_value *v);

/*
 * ck_value__append_json - append to `out` the compact JSON text of `v`,
 * byte for byte what json_dumps(ck_value__to_json(v), JSON_COMPACT |
 * JSON_ENCODE_ANY) gives, without building a json_t (the release hot path).
 * Allocates nothing but the growth of `out`.
 *
 * `v` must pass ck_codec__check (string contents are not checked again:
 * values decoded by the store were checked when decoded). On failure `out`
 * is restored to its length before the call (the bytes written wiped first
 * when it is secure).
 * Returns CK_OK; CK_ENOMEM (CK_ELIMIT when `out` would pass its hard cap);
 * CK_EINVAL for a type, date, timestamp or float that no valid value has.
 */
int ck_value__append_json(ck_buf *out, const ck_value *v);

/*
 * ck_value__json_string - append `n` bytes at `s` (UTF-8) as one JSON string,
 * escaped exactly as Jansson's json_dumps does without flags: '"', '\\' and
 * the control characters U+0000..U+001F are escaped (\b \f \n \r \t, else
 * \u00XX with upper-case hex), '/' and non-ASCII are kept as they are.
 * Failure as for ck_value__append_json.
 */
int ck_value__json_string(ck_buf *out, const char *s, size_t n);

/*
 * ck_value__minimize - release `in` as the minimisation `m` declares it.
 *
 *   CK_MIN_NONE   out = in (shallow copy)
 *   CK_MIN_YEAR   date or timestamp -> INT: the civil year as written (a
 *                 timestamp's year in its own offset: 2024-12-31T23:30:00-05:00
 *                 is 2024, though it is 2025 in UTC)
 *   CK_MIN_PREFIX string -> STRING: its first m->prefix Unicode code points
 *                 (the whole string when it is shorter)
 *   CK_MIN_DOMAIN string -> STRING: the part after the LAST '@'; "" when
 *                 there is no '@' (nothing of the value is revealed)
 *   CK_MIN_BAND   int or float -> STRING label, with E1 < ... < En the edges:
 *                 v < E1 -> "<E1"; Ei <= v < Ei+1 -> "Ei-Ei+1" ("1000-5000",
 *                 "-50-0", "-100--50"); v >= En -> ">=En". Floats are
 *                 compared with the int64 edges exactly (no rounding).
 *
 * out out: the minimised value; all zero on failure. Its memory is in
 *          `arena` (band labels) or is the input's own (NONE, PREFIX and
 *          DOMAIN point into `in`'s memory): it lives as long as both.
 *
 * Returns CK_OK; CK_ENOMEM; CK_EINTERNAL when the minimisation does not
 * apply to the value's type or `m` breaks its invariants (no edges, prefix
 * 0, unknown kind): the schema validator prevents both.
 */
int ck_value__minimize(ck_value *out, const ck_value *in, const ck_schema_min *m, ck_arena *arena);

#endif /* CK_VALUE_H */
