/*
 * test_schema.c - the schema module: validation messages, the snapshot and
 * its lookups, the stored record, apply (versions, field ids, force), and
 * a schema applied by another process.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <sys/wait.h>

#include "schema.h"
#include "fixture.h"

/* ------------------------------------------------------------------------ */
/* Fixtures and helpers                                                     */
/* ------------------------------------------------------------------------ */

/* Every handle of these tests, ck_init's and ck_open's alike, has these
 * flags and the real-time clock; setup applies no schema. */
#define FX_FLAGS (CK_INIT_CREATE_KEY_FILE | CK_OPEN_NOSYNC)

static ck_options key_opts(tu_fx *f)
{
    return tu_fx_options(f, FX_FLAGS);
}

static int setup(void **state)
{
    return tu_fx_setup(state, "schema", TU_FX_WALL_CLOCK, FX_FLAGS, NULL);
}

/* The example schema of the repository (examples/schema.json). */
static char *example_json(size_t *len)
{
    const char *src = getenv("CK_SOURCE_DIR");
    char p[PATH_MAX];
    tu_path(p, sizeof p, src != NULL ? src : ".", "examples/schema.json");
    char *s = (char *)tu_read_file(p, len);
    assert_non_null(s);
    return s;
}

static int apply(ck_store *st, const char *json, unsigned flags, ck_schema_apply_result *r)
{
    return ck_schema_apply(st, json, strlen(json), flags, r);
}

/* Parse without a store; expect failure with exactly `msg`. */
static void expect_invalid(const char *json, const char *msg)
{
    char err[CK_ERRMSG_MAX];
    ck_schema *s = NULL;
    int rc = ck_schema__from_json(&s, NULL, json, strlen(json), err, sizeof err);
    if (rc != CK_EINVAL || strcmp(err, msg) != 0)
        fail_msg("schema %s\n  rc %d, message: %s\n  expected:     %s", json, rc, err, msg);
    assert_null(s);
}

static ck_schema *parse_ok(const char *json)
{
    char err[CK_ERRMSG_MAX];
    ck_schema *s = NULL;
    int rc = ck_schema__from_json(&s, NULL, json, strlen(json), err, sizeof err);
    if (rc != CK_OK)
        fail_msg("schema %s\n  rc %d, message: %s", json, rc, err);
    return s;
}

static bool has_name(const ck_schema_names *n, const char *name)
{
    for (size_t i = 0; i < n->count; i++)
        if (strcmp(n->names[i], name) == 0)
            return true;
    return false;
}

static uint16_t field_id(ck_store *st, const char *name)
{
    MDB_txn *t;
    ck_schema *s;
    assert_int_equal(ck_env__read_begin(st, &st->data, &t), CK_OK);
    assert_int_equal(ck_schema__get(&s, st, t), CK_OK);
    ck_env__read_end(&st->data, t);
    const ck_schema_field *f = ck_schema__field(s, name, strlen(name));
    uint16_t id = f != NULL ? f->id : 0;
    ck_schema__release(s);
    return id;
}

/* Write one value for a new subject (as test_store.c does). */
typedef struct put_ctx {
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    unsigned char dk[32];
    uint16_t field;
    const ck_value *v;
} put_ctx;

static int key_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    put_ctx *c = ctx;
    return ck_keyring__create(st, txn, c->sid, c->dk);
}

static int put_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    put_ctx *c = ctx;
    ck_buf scratch = CK_BUF_SECURE_INIT;
    int rc = ck_seal__put(st, txn, c->sid, c->field, c->dk, c->v, &scratch);
    ck_buf__free(&scratch);
    return rc;
}

static void put_value(ck_store *st, uint8_t sid[CK_SUBJECT_ID_BYTES], uint16_t field,
                      const ck_value *v)
{
    put_ctx c;
    randombytes_buf(c.sid, sizeof c.sid);
    c.field = field;
    c.v = v;
    assert_int_equal(ck_env__write(st, &st->keyring, key_txn, &c), CK_OK);
    assert_int_equal(ck_env__write(st, &st->data, put_txn, &c), CK_OK);
    if (sid != NULL)
        memcpy(sid, c.sid, sizeof c.sid);
}

static uint64_t value_count(ck_store *st)
{
    ck_stats s = CK_STATS_INIT;
    assert_int_equal(ck_stats_get(&s, st), CK_OK);
    return s.values;
}

/* A small schema in which one word can be swapped. */
#define F_EMAIL "\"email\":{\"type\":\"string\",\"sensitivity\":\"personal\",\"identifying\":true}"
#define F_BIRTH "\"birth_date\":{\"type\":\"date\",\"sensitivity\":\"personal\"}"
#define F_CITY  "\"city\":{\"type\":\"string\",\"sensitivity\":\"personal\"}"
#define F_SPEND "\"spend\":{\"type\":\"int\",\"sensitivity\":\"personal\"}"
#define FIELDS  "\"fields\":{" F_EMAIL "," F_BIRTH "," F_CITY "," F_SPEND "}"
#define P_HEAD  "\"basis\":\"consent\",\"description\":\"d\",\"benefit\":\"b\""
/* A schema with FIELDS and one purpose "x" whose body continues `rest`. */
#define WITH_X(rest) "{" FIELDS ",\"purposes\":{\"x\":{" P_HEAD "," rest "}}}"

/* ------------------------------------------------------------------------ */
/* Validation: one test per kind of error, with its exact message           */
/* ------------------------------------------------------------------------ */

static void test_invalid_top_level(void **state)
{
    (void)state;
    expect_invalid("", "schema: the file is empty");
    expect_invalid("{}", "fields: missing (a schema needs at least one field)");
    expect_invalid("{\"fields\":{}}", "fields: a schema needs at least one field");
    expect_invalid("[]", "schema: expected an object {\"fields\": {...}, \"purposes\": {...}}");
    expect_invalid("{\"fields\":[]}", "fields: expected an object {\"name\": {\"type\": ...}}");
    expect_invalid("{" FIELDS ",\"colour\":1}", "colour: unknown key (expected fields, purposes)");
    expect_invalid("{" FIELDS ",\"purposes\":[]}",
                   "purposes: expected an object {\"name\": {\"basis\": ...}}");
    expect_invalid("{" FIELDS ",\"version\":\"one\"}",
                   "version: expected a non-negative integer (it is ignored)");
}

static void test_invalid_json_syntax(void **state)
{
    (void)state;
    char err[CK_ERRMSG_MAX];
    ck_schema *s = NULL;
    const char *j = "{\"fields\":\n  {\"email\": }}";
    assert_int_equal(ck_schema__from_json(&s, NULL, j, strlen(j), err, sizeof err), CK_EINVAL);
    assert_null(s);
    assert_true(strncmp(err, "line 2, column ", 15) == 0);
    /* Duplicate keys are refused, not silently merged. */
    j = "{" FIELDS ",\"fields\":{" F_CITY "}}";
    assert_int_equal(ck_schema__from_json(&s, NULL, j, strlen(j), err, sizeof err), CK_EINVAL);
    assert_non_null(strstr(err, "duplicate object key"));
    assert_true(strncmp(err, "line 1, column ", 15) == 0);
}

static void test_invalid_field(void **state)
{
    (void)state;
    expect_invalid("{\"fields\":{\"Email\":{\"type\":\"string\",\"sensitivity\":\"personal\"}}}",
                   "fields: invalid field name \"Email\" (1 to 64 bytes of a-z, 0-9, '_', '.', "
                   "'-')");
    expect_invalid("{\"fields\":{\"email\":\"string\"}}",
                   "fields.email: expected an object with \"type\" and \"sensitivity\"");
    expect_invalid("{\"fields\":{\"email\":{\"type\":\"strng\",\"sensitivity\":\"personal\"}}}",
                   "fields.email.type: unknown type \"strng\" (expected string, int, float, bool, "
                   "date, timestamp, bytes, list)");
    expect_invalid("{\"fields\":{\"email\":{\"sensitivity\":\"personal\"}}}",
                   "fields.email.type: missing (expected string, int, float, bool, date, "
                   "timestamp, bytes, list)");
    expect_invalid("{\"fields\":{\"email\":{\"type\":1,\"sensitivity\":\"personal\"}}}",
                   "fields.email.type: expected a string (string, int, float, bool, date, "
                   "timestamp, bytes, list)");
    expect_invalid("{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"secret\"}}}",
                   "fields.email.sensitivity: unknown sensitivity \"secret\" (expected public, "
                   "personal, sensitive, special)");
    expect_invalid("{\"fields\":{\"email\":{\"type\":\"string\"}}}",
                   "fields.email.sensitivity: missing (expected public, personal, sensitive, "
                   "special)");
    expect_invalid("{\"fields\":{\"email\":{\"type\":\"string\",\"sensitivity\":\"public\","
                   "\"identifying\":\"yes\"}}}",
                   "fields.email.identifying: expected true or false");
    expect_invalid("{\"fields\":{\"age\":{\"type\":\"int\",\"sensitivity\":\"public\","
                   "\"identifying\":true}}}",
                   "fields.age.identifying: only a string field can be identifying");
    expect_invalid("{\"fields\":{\"age\":{\"type\":\"int\",\"sensitivity\":\"public\","
                   "\"retention_days\":-1}}}",
                   "fields.age.retention_days: expected an integer from 0 to 36500");
    expect_invalid("{\"fields\":{\"age\":{\"type\":\"int\",\"sensitivity\":\"public\","
                   "\"retention_days\":1.5}}}",
                   "fields.age.retention_days: expected an integer from 0 to 36500");
    expect_invalid("{\"fields\":{\"age\":{\"type\":\"int\",\"sensitivity\":\"public\","
                   "\"colour\":\"red\"}}}",
                   "fields.age.colour: unknown key (expected type, sensitivity, identifying, "
                   "retention_days)");
}

static void test_invalid_names_and_limits(void **state)
{
    (void)state;
    char name[80], json[512];
    memset(name, 'a', 65);
    name[65] = '\0';
    snprintf(json, sizeof json,
             "{\"fields\":{\"%s\":{\"type\":\"int\",\"sensitivity\":\"public\"}}}", name);
    expect_invalid(json, "fields: invalid field name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" (1 to "
                         "64 bytes of a-z, 0-9, '_', '.', '-')");
    /* 64 bytes is fine. */
    name[64] = '\0';
    snprintf(json, sizeof json,
             "{\"fields\":{\"%s\":{\"type\":\"int\",\"sensitivity\":\"public\"}}}", name);
    ck_schema__release(parse_ok(json));

    /* 1025 fields. */
    size_t cap = 1100 * 80, o = 0;
    char *big = malloc(cap);
    o += (size_t)snprintf(big + o, cap - o, "{\"fields\":{");
    for (int i = 0; i < 1025; i++)
        o += (size_t)snprintf(big + o, cap - o,
                              "%s\"f%d\":{\"type\":\"int\",\"sensitivity\":\"public\"}",
                              i > 0 ? "," : "", i);
    snprintf(big + o, cap - o, "}}");
    expect_invalid(big, "fields: more than 1024 fields");
    free(big);

    expect_invalid("{" FIELDS ",\"purposes\":{\"X\":{}}}",
                   "purposes: invalid purpose name \"X\" (1 to 64 bytes of a-z, 0-9, '_', '.', "
                   "'-')");
}

static void test_invalid_purpose(void **state)
{
    (void)state;
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":[]}}", "purposes.x: expected an object");
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{\"description\":\"d\",\"benefit\":\"b\","
                   "\"fields\":[\"email\"]}}}",
                   "purposes.x.basis: missing (expected consent, contract, legal_obligation, "
                   "legitimate_interest)");
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{\"basis\":\"whim\"}}}",
                   "purposes.x.basis: unknown basis \"whim\" (expected consent, contract, "
                   "legal_obligation, legitimate_interest)");
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{\"basis\":\"consent\",\"benefit\":\"b\"}}}",
                   "purposes.x.description: missing (every purpose says, in plain language, what "
                   "the data serve)");
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{\"basis\":\"consent\",\"description\":\"\"}}}",
                   "purposes.x.description: must not be empty");
    expect_invalid("{" FIELDS
                   ",\"purposes\":{\"x\":{\"basis\":\"consent\",\"description\":\"d\"}}}",
                   "purposes.x.benefit: missing (every purpose says, in plain language, what the "
                   "customer gains)");
    char *big = malloc(2000), *json = malloc(4000);
    memset(big, 'z', 1025);
    big[1025] = '\0';
    snprintf(json, 4000,
             "{" FIELDS ",\"purposes\":{\"x\":{\"basis\":\"consent\","
             "\"description\":\"%s\"}}}",
             big);
    expect_invalid(json, "purposes.x.description: longer than 1024 bytes");
    free(big);
    free(json);
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{" P_HEAD "}}}",
                   "purposes.x.fields: missing (the fields this purpose may use)");
    expect_invalid(WITH_X("\"fields\":[]"),
                   "purposes.x.fields: a purpose needs at least one field");
    expect_invalid(WITH_X("\"fields\":\"email\""),
                   "purposes.x.fields: expected an array of field names");
    expect_invalid("{" FIELDS ",\"purposes\":{\"marketing.email\":{" P_HEAD
                   ",\"fields\":[\"city\",\"emial\"]}}}",
                   "purposes.marketing.email.fields[1]: unknown field \"emial\"");
    expect_invalid(WITH_X("\"fields\":[\"email\",3]"),
                   "purposes.x.fields[1]: expected a field name");
    expect_invalid(WITH_X("\"fields\":[\"email\",\"city\",\"email\"]"),
                   "purposes.x.fields[2]: field \"email\" is listed twice");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"why\":1"),
                   "purposes.x.why: unknown key (expected basis, description, benefit, fields, "
                   "minimize, channel, tcf, hold)");
}

static void test_invalid_minimize(void **state)
{
    (void)state;
    expect_invalid("{" FIELDS ",\"purposes\":{\"analytics\":{" P_HEAD
                   ",\"fields\":[\"birth_date\"],\"minimize\":{\"birth_date\":\"yeer\"}}}}",
                   "purposes.analytics.minimize.birth_date: unknown minimisation \"yeer\" "
                   "(expected year, prefix:N, domain, band:E1,E2,...)");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"minimize\":{\"city\":\"prefix:2\"}"),
                   "purposes.x.minimize.city: field is not in the purpose's fields");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"minimize\":{\"town\":\"prefix:2\"}"),
                   "purposes.x.minimize.town: unknown field");
    expect_invalid(WITH_X("\"fields\":[\"city\"],\"minimize\":{\"city\":\"year\"}"),
                   "purposes.x.minimize.city: \"year\" needs a date or timestamp field");
    expect_invalid(WITH_X("\"fields\":[\"spend\"],\"minimize\":{\"spend\":\"prefix:2\"}"),
                   "purposes.x.minimize.spend: \"prefix\" needs a string field");
    expect_invalid(WITH_X("\"fields\":[\"birth_date\"],\"minimize\":{\"birth_date\":\"domain\"}"),
                   "purposes.x.minimize.birth_date: \"domain\" needs a string field");
    expect_invalid(WITH_X("\"fields\":[\"city\"],\"minimize\":{\"city\":\"band:1,2\"}"),
                   "purposes.x.minimize.city: \"band\" needs an int or float field");
    expect_invalid(WITH_X("\"fields\":[\"city\"],\"minimize\":{\"city\":\"prefix:0\"}"),
                   "purposes.x.minimize.city: \"prefix:N\" needs N from 1 to 32");
    expect_invalid(WITH_X("\"fields\":[\"city\"],\"minimize\":{\"city\":\"prefix:33\"}"),
                   "purposes.x.minimize.city: \"prefix:N\" needs N from 1 to 32");
    expect_invalid(WITH_X("\"fields\":[\"city\"],\"minimize\":{\"city\":\"prefix\"}"),
                   "purposes.x.minimize.city: \"prefix:N\" needs N from 1 to 32");
    expect_invalid(WITH_X("\"fields\":[\"spend\"],\"minimize\":{\"spend\":\"band:5,5\"}"),
                   "purposes.x.minimize.spend: band edges must be integers in strictly "
                   "ascending order");
    expect_invalid(WITH_X("\"fields\":[\"spend\"],\"minimize\":{\"spend\":\"band:1,x\"}"),
                   "purposes.x.minimize.spend: band edges must be integers in strictly "
                   "ascending order");
    expect_invalid(WITH_X("\"fields\":[\"spend\"],\"minimize\":{\"spend\":\"band:\"}"),
                   "purposes.x.minimize.spend: \"band:E1,E2,...\" needs at least one edge");
    expect_invalid(WITH_X("\"fields\":[\"spend\"],\"minimize\":{\"spend\":2}"),
                   "purposes.x.minimize.spend: expected a string (year, prefix:N, domain, "
                   "band:E1,E2,...)");
    /* 65 edges. */
    char edges[1024], json[2048];
    size_t o = (size_t)snprintf(edges, sizeof edges, "band:");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(edges + o, sizeof edges - o, "%s%d", i > 0 ? "," : "", i);
    snprintf(json, sizeof json, WITH_X("\"fields\":[\"spend\"],\"minimize\":{\"spend\":\"%s\"}"),
             edges);
    expect_invalid(json, "purposes.x.minimize.spend: more than 64 band edges");
    /* Negative edges and the extremes of int64 are fine. */
    ck_schema *s = parse_ok(WITH_X("\"fields\":[\"spend\"],\"minimize\":{\"spend\":"
                                   "\"band:-9223372036854775808,-5,0,9223372036854775807\"}"));
    const ck_schema_purpose *p = ck_schema__purpose(s, "x", 1);
    assert_non_null(p);
    assert_int_equal(p->min[0].kind, CK_MIN_BAND);
    assert_int_equal(p->min[0].nedges, 4);
    assert_true(p->min[0].edges[0] == INT64_MIN);
    assert_true(p->min[0].edges[3] == INT64_MAX);
    ck_schema__release(s);
}

static void test_invalid_channel(void **state)
{
    (void)state;
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":{\"type\":\"fax\",\"field\":"
                          "\"email\",\"cap\":{\"count\":1,\"days\":1}}"),
                   "purposes.x.channel.type: unknown channel type \"fax\" (expected email, sms, "
                   "phone, post)");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":"
                          "\"city\",\"cap\":{\"count\":1,\"days\":1}}"),
                   "purposes.x.channel.field: field is not in the purpose's fields");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":"
                          "\"mail\",\"cap\":{\"count\":1,\"days\":1}}"),
                   "purposes.x.channel.field: unknown field \"mail\"");
    expect_invalid(WITH_X("\"fields\":[\"spend\"],\"channel\":{\"type\":\"sms\",\"field\":"
                          "\"spend\",\"cap\":{\"count\":1,\"days\":1}}"),
                   "purposes.x.channel.field: a channel needs a string field");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":"
                          "\"email\"}"),
                   "purposes.x.channel.cap: missing (the pressure cap: {\"count\": N, \"days\": "
                   "D})");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":"
                          "\"email\",\"cap\":{\"count\":0,\"days\":30}}"),
                   "purposes.x.channel.cap.count: expected an integer from 1 to 1000");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":"
                          "\"email\",\"cap\":{\"count\":2}}"),
                   "purposes.x.channel.cap.days: missing (expected an integer from 1 to 3660)");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":{\"type\":\"email\",\"field\":"
                          "\"email\",\"cap\":{\"count\":2,\"days\":3,\"burst\":1}}"),
                   "purposes.x.channel.cap.burst: unknown key (expected count, days)");
    expect_invalid(WITH_X("\"fields\":[\"email\"],\"channel\":\"email\""),
                   "purposes.x.channel: expected an object with \"type\", \"field\" and \"cap\"");
}

/* A purpose "x" (basis consent) with fields [email] and the given "tcf". */
#define WITH_TCF(tcf) WITH_X("\"fields\":[\"email\"],\"tcf\":" tcf)

static void test_invalid_tcf(void **state)
{
    (void)state;
    expect_invalid(WITH_TCF("[1]"),
                   "purposes.x.tcf: expected an object {\"purposes\": [...], ...}");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"vendors\":[755]}"),
                   "purposes.x.tcf.vendors: unknown key (expected purposes, special_features, "
                   "vendor, publisher)");
    expect_invalid(WITH_TCF("{\"vendor\":755}"),
                   "purposes.x.tcf.purposes: missing (the TCF purposes this purpose stands for, "
                   "e.g. [1, 4])");
    expect_invalid(WITH_TCF("{\"purposes\":[]}"),
                   "purposes.x.tcf.purposes: at least one TCF purpose (ids 1 to 24)");
    expect_invalid(WITH_TCF("{\"purposes\":4}"),
                   "purposes.x.tcf.purposes: expected an array of TCF purpose ids (1 to 24)");
    expect_invalid("{" FIELDS ",\"purposes\":{\"ads\":{" P_HEAD
                   ",\"fields\":[\"email\"],\"tcf\":{\"purposes\":[1,4,25]}}}}",
                   "purposes.ads.tcf.purposes[2]: TCF purpose ids are 1 to 24");
    expect_invalid(WITH_TCF("{\"purposes\":[0]}"),
                   "purposes.x.tcf.purposes[0]: TCF purpose ids are 1 to 24");
    expect_invalid(WITH_TCF("{\"purposes\":[\"1\"]}"),
                   "purposes.x.tcf.purposes[0]: TCF purpose ids are 1 to 24");
    expect_invalid(WITH_TCF("{\"purposes\":[1.5]}"),
                   "purposes.x.tcf.purposes[0]: TCF purpose ids are 1 to 24");
    expect_invalid(WITH_TCF("{\"purposes\":[1,4,1]}"),
                   "purposes.x.tcf.purposes[2]: TCF purpose 1 is listed twice");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"special_features\":[13]}"),
                   "purposes.x.tcf.special_features[0]: TCF special feature ids are 1 to 12");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"special_features\":[2,2]}"),
                   "purposes.x.tcf.special_features[1]: TCF special feature 2 is listed twice");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"special_features\":1}"),
                   "purposes.x.tcf.special_features: expected an array of TCF special feature "
                   "ids (1 to 12)");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"vendor\":0}"),
                   "purposes.x.tcf.vendor: expected an integer from 1 to 65535");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"vendor\":65536}"),
                   "purposes.x.tcf.vendor: expected an integer from 1 to 65535");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"vendor\":\"755\"}"),
                   "purposes.x.tcf.vendor: expected an integer from 1 to 65535");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"publisher\":1}"),
                   "purposes.x.tcf.publisher: expected true or false");
    expect_invalid(WITH_TCF("{\"purposes\":[1],\"vendor\":755,\"publisher\":true}"),
                   "purposes.x.tcf: give vendor or publisher, not both");
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{\"basis\":\"contract\",\"description\":"
                   "\"d\",\"benefit\":\"b\",\"fields\":[\"email\"],\"tcf\":{\"purposes\":[1]}}}}",
                   "purposes.x.tcf: only a consent or legitimate_interest purpose maps TCF "
                   "signals (this one's basis is contract)");

    /* Accepted: the smallest mapping, the largest ids, publisher false with
     * a vendor, no special feature. */
    ck_schema *s = parse_ok(WITH_TCF("{\"purposes\":[24,1]}"));
    const ck_schema_tcf *t = &ck_schema__purpose(s, "x", 1)->tcf;
    assert_true(t->set);
    assert_int_equal(t->purposes, (1u << 23) | 1u);
    assert_int_equal(t->special_features, 0);
    assert_int_equal(t->vendor, 0);
    assert_false(t->publisher);
    ck_schema__release(s);
    s = parse_ok(WITH_TCF("{\"purposes\":[2],\"special_features\":[12,1],\"vendor\":65535,"
                          "\"publisher\":false}"));
    t = &ck_schema__purpose(s, "x", 1)->tcf;
    assert_int_equal(t->purposes, 2u);
    assert_int_equal(t->special_features, (1u << 11) | 1u);
    assert_int_equal(t->vendor, 65535);
    assert_false(t->publisher);
    ck_schema__release(s);
    s = parse_ok(WITH_TCF("{\"purposes\":[7],\"special_features\":[],\"publisher\":true}"));
    t = &ck_schema__purpose(s, "x", 1)->tcf;
    assert_true(t->publisher);
    assert_int_equal(t->special_features, 0);
    ck_schema__release(s);
    s = parse_ok(WITH_X("\"fields\":[\"email\"]"));
    assert_false(ck_schema__purpose(s, "x", 1)->tcf.set);
    ck_schema__release(s);
}

#define TCF_SCHEMA                                                                                 \
    "{" FIELDS ",\"purposes\":{"                                                                   \
    "\"ads\":{" P_HEAD ",\"fields\":[\"email\"],"                                                  \
    "\"tcf\":{\"purposes\":[4,1],\"special_features\":[1],\"vendor\":755}},"                       \
    "\"site\":{\"basis\":\"legitimate_interest\",\"description\":\"d\",\"benefit\":\"b\","         \
    "\"fields\":[\"city\"],\"tcf\":{\"purposes\":[8,10],\"publisher\":true}},"                     \
    "\"plain\":{" P_HEAD ",\"fields\":[\"city\"]}}}"

static void test_tcf_record_and_json(void **state)
{
    (void)state;
    ck_schema *s = parse_ok(TCF_SCHEMA), *d = NULL, *back = NULL;
    ck_buf a = CK_BUF_INIT, b = CK_BUF_INIT, j = CK_BUF_INIT;
    char err[CK_ERRMSG_MAX];

    /* The JSON text: ids ascending, absent members left out. */
    assert_int_equal(ck_schema__to_json(&j, s), CK_OK);
    assert_int_equal(ck_buf__append(&j, "", 1), CK_OK);
    const char *text = (const char *)j.p;
    assert_non_null(strstr(text, "\"tcf\":{\"purposes\":[1,4],\"special_features\":[1],"
                                 "\"vendor\":755}"));
    assert_non_null(strstr(text, "\"tcf\":{\"purposes\":[8,10],\"special_features\":[],"
                                 "\"publisher\":true}"));
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    assert_null(
        json_object_get(json_object_get(json_object_get(root, "purposes"), "plain"), "tcf"));
    json_decref(root);
    /* ... loads back, with the snapshot as its base, to the same record. */
    assert_int_equal(ck_schema__from_json(&back, s, text, j.len - 1, err, sizeof err), CK_OK);
    back->version = s->version;
    assert_int_equal(ck_schema__encode(&a, s), CK_OK);
    assert_int_equal(ck_schema__encode(&b, back), CK_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    ck_schema__release(back);

    /* The record decodes to the same mapping and re-encodes to the same
     * bytes. */
    assert_int_equal(ck_schema__decode(&d, a.p, a.len), CK_OK);
    const ck_schema_tcf *t = &ck_schema__purpose(d, "ads", 3)->tcf;
    assert_true(t->set);
    assert_int_equal(t->purposes, 0x9u);
    assert_int_equal(t->special_features, 1);
    assert_int_equal(t->vendor, 755);
    assert_false(t->publisher);
    t = &ck_schema__purpose(d, "site", 4)->tcf;
    assert_true(t->publisher);
    assert_int_equal(t->purposes, (1u << 7) | (1u << 9));
    assert_false(ck_schema__purpose(d, "plain", 5)->tcf.set);
    ck_buf__reset(&b);
    assert_int_equal(ck_schema__encode(&b, d), CK_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    ck_schema__release(d);

    /* A purpose without a mapping keeps the 7-element layout of records
     * written before mappings existed: "plain" is [name, ...] as 0x97. */
    static const uint8_t plain7[] = {0x97, 0xa5, 'p', 'l', 'a', 'i', 'n'};
    assert_non_null(memmem(a.p, a.len, plain7, sizeof plain7));
    static const uint8_t ads8[] = {0x98, 0xa3, 'a', 'd', 's'};
    assert_non_null(memmem(a.p, a.len, ads8, sizeof ads8));

    /* Every truncation and single-bit change is refused or consistent. */
    for (size_t n = 0; n < a.len; n++) {
        assert_int_equal(ck_schema__decode(&d, a.p, n), CK_EFORMAT);
        assert_null(d);
    }
    for (size_t i = 0; i < a.len; i++) {
        uint8_t saved = a.p[i];
        for (unsigned x = 1; x < 256; x <<= 1) {
            a.p[i] = (uint8_t)(saved ^ x);
            int rc = ck_schema__decode(&d, a.p, a.len);
            assert_true(rc == CK_OK || rc == CK_EFORMAT);
            if (rc == CK_OK) {
                for (uint32_t k = 0; k < d->npurposes; k++) {
                    const ck_schema_purpose *p = &d->purposes[k];
                    if (!p->tcf.set)
                        continue;
                    assert_true(p->tcf.purposes != 0 && p->tcf.purposes < (1u << 24));
                    assert_true(p->tcf.special_features < (1u << 12));
                    assert_false(p->tcf.vendor != 0 && p->tcf.publisher);
                    assert_true(p->basis == CK_BASIS_CONSENT ||
                                p->basis == CK_BASIS_LEGITIMATE_INTEREST);
                }
                ck_schema__release(d);
            }
        }
        a.p[i] = saved;
    }

    /* Records that break a rule of the loader are refused. */
    ck_schema_purpose *ads = (ck_schema_purpose *)ck_schema__purpose(s, "ads", 3);
    const ck_schema_tcf good = ads->tcf;
    struct {
        uint32_t purposes;
        uint16_t features, vendor;
        bool publisher;
        ck_basis basis;
    } bad[] = {
        {0, 0, 0, false, CK_BASIS_CONSENT},        {1u << 24, 0, 0, false, CK_BASIS_CONSENT},
        {1, 1u << 12, 0, false, CK_BASIS_CONSENT}, {1, 0, 755, true, CK_BASIS_CONSENT},
        {1, 0, 0, false, CK_BASIS_CONTRACT},       {1, 0, 0, false, CK_BASIS_LEGAL_OBLIGATION}};
    for (size_t i = 0; i < CK_ARRAY_LEN(bad); i++) {
        ads->tcf.purposes = bad[i].purposes;
        ads->tcf.special_features = bad[i].features;
        ads->tcf.vendor = bad[i].vendor;
        ads->tcf.publisher = bad[i].publisher;
        ads->basis = bad[i].basis;
        ck_buf__reset(&b);
        assert_int_equal(ck_schema__encode(&b, s), CK_OK);
        assert_int_equal(ck_schema__decode(&d, b.p, b.len), CK_EFORMAT);
        assert_null(d);
    }
    ads->tcf = good;
    ads->basis = CK_BASIS_CONSENT;
    ck_buf__free(&a);
    ck_buf__free(&b);
    ck_buf__free(&j);
    ck_schema__release(s);
}

/* A purpose "x" (basis legal_obligation) with fields [email, city, spend]
 * and the given "hold". */
#define LEGAL_HEAD "\"basis\":\"legal_obligation\",\"description\":\"d\",\"benefit\":\"b\""
#define WITH_HOLD(hold)                                                                            \
    "{" FIELDS ",\"purposes\":{\"x\":{" LEGAL_HEAD ",\"fields\":[\"email\",\"city\",\"spend\"],"   \
    "\"hold\":" hold "}}}"

static void test_invalid_hold(void **state)
{
    (void)state;
    expect_invalid(WITH_HOLD("[]"),
                   "purposes.x.hold: expected an object {\"fields\": [...], \"days\": N}");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\"],\"days\":10,\"years\":1}"),
                   "purposes.x.hold.years: unknown key (expected fields, days)");
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{" P_HEAD ",\"fields\":[\"city\"],"
                   "\"hold\":{\"fields\":[\"city\"],\"days\":10}}}}",
                   "purposes.x.hold: only a legal_obligation purpose keeps fields after an "
                   "erasure (this one's basis is consent)");
    expect_invalid("{" FIELDS ",\"purposes\":{\"x\":{\"basis\":\"contract\",\"description\":\"d\","
                   "\"benefit\":\"b\",\"fields\":[\"city\"],"
                   "\"hold\":{\"fields\":[\"city\"],\"days\":10}}}}",
                   "purposes.x.hold: only a legal_obligation purpose keeps fields after an "
                   "erasure (this one's basis is contract)");
    expect_invalid(WITH_HOLD("{\"days\":10}"),
                   "purposes.x.hold.fields: missing (the fields an erasure keeps for this "
                   "obligation)");
    expect_invalid(WITH_HOLD("{\"fields\":\"city\",\"days\":10}"),
                   "purposes.x.hold.fields: expected an array of field names");
    expect_invalid(WITH_HOLD("{\"fields\":[],\"days\":10}"),
                   "purposes.x.hold.fields: a hold keeps at least one field");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\",\"citty\"],\"days\":10}"),
                   "purposes.x.hold.fields[1]: unknown field \"citty\"");
    expect_invalid(WITH_HOLD("{\"fields\":[\"birth_date\"],\"days\":10}"),
                   "purposes.x.hold.fields[0]: field is not in the purpose's fields");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\",7],\"days\":10}"),
                   "purposes.x.hold.fields[1]: expected a field name");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\",\"spend\",\"city\"],\"days\":10}"),
                   "purposes.x.hold.fields[2]: field \"city\" is listed twice");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\",\"spend\",\"email\",\"city\"],\"days\":10}"),
                   "purposes.x.hold.fields: more names than the purpose has fields");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\"]}"),
                   "purposes.x.hold.days: missing (expected an integer from 1 to 36500)");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\"],\"days\":0}"),
                   "purposes.x.hold.days: expected an integer from 1 to 36500");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\"],\"days\":36501}"),
                   "purposes.x.hold.days: expected an integer from 1 to 36500");
    expect_invalid(WITH_HOLD("{\"fields\":[\"city\"],\"days\":\"10\"}"),
                   "purposes.x.hold.days: expected an integer from 1 to 36500");
    /* The bounds themselves are accepted. */
    ck_schema *s = parse_ok(WITH_HOLD("{\"fields\":[\"spend\",\"city\"],\"days\":36500}"));
    const ck_schema_purpose *x = ck_schema__purpose(s, "x", 1);
    assert_int_equal(x->hold.nfields, 2);
    assert_int_equal(x->hold.days, 36500);
    assert_int_equal(x->hold.field_ids[0], ck_schema__field(s, "spend", 5)->id);
    assert_int_equal(x->hold.field_ids[1], ck_schema__field(s, "city", 4)->id);
    ck_schema__release(s);
    s = parse_ok(WITH_HOLD("{\"fields\":[\"email\"],\"days\":1}"));
    assert_int_equal(ck_schema__purpose(s, "x", 1)->hold.days, 1);
    ck_schema__release(s);
}

#define HOLD_SCHEMA                                                                                \
    "{" FIELDS ",\"purposes\":{"                                                                   \
    "\"invoicing\":{" LEGAL_HEAD ",\"fields\":[\"email\",\"city\",\"spend\"],"                     \
    "\"hold\":{\"fields\":[\"spend\",\"city\"],\"days\":3650}},"                                   \
    "\"legal\":{" LEGAL_HEAD ",\"fields\":[\"city\"]},"                                            \
    "\"ads\":{" P_HEAD ",\"fields\":[\"email\"],\"tcf\":{\"purposes\":[1]}}}}"

/* A hold goes through the record and the JSON text unchanged; the record
 * is canonical and refuses every hold that breaks a rule of the loader. */
static void test_hold_record_and_json(void **state)
{
    (void)state;
    ck_schema *s = parse_ok(HOLD_SCHEMA), *d = NULL, *back = NULL;
    ck_buf a = CK_BUF_INIT, b = CK_BUF_INIT, j = CK_BUF_INIT;
    char err[CK_ERRMSG_MAX];

    assert_int_equal(ck_schema__to_json(&j, s), CK_OK);
    assert_int_equal(ck_buf__append(&j, "", 1), CK_OK);
    const char *text = (const char *)j.p;
    assert_non_null(strstr(text, "\"hold\":{\"fields\":[\"spend\",\"city\"],\"days\":3650}"));
    assert_null(strstr(strstr(text, "\"legal\""), "\"hold\""));
    assert_int_equal(ck_schema__from_json(&back, s, text, j.len - 1, err, sizeof err), CK_OK);
    back->version = s->version;
    assert_int_equal(ck_schema__encode(&a, s), CK_OK);
    assert_int_equal(ck_schema__encode(&b, back), CK_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    ck_schema__release(back);

    assert_int_equal(ck_schema__decode(&d, a.p, a.len), CK_OK);
    const ck_schema_hold *h = &ck_schema__purpose(d, "invoicing", 9)->hold;
    assert_int_equal(h->nfields, 2);
    assert_int_equal(h->days, 3650);
    assert_int_equal(h->field_ids[0], ck_schema__field(d, "spend", 5)->id);
    assert_int_equal(ck_schema__purpose(d, "legal", 5)->hold.nfields, 0);
    assert_int_equal(ck_schema__purpose(d, "ads", 3)->hold.nfields, 0);
    ck_buf__reset(&b);
    assert_int_equal(ck_schema__encode(&b, d), CK_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    ck_schema__release(d);

    /* 9 elements with a hold (the 8th nil), 7 without, 8 with a tcf. */
    static const uint8_t inv9[] = {0x99, 0xa9, 'i', 'n', 'v', 'o', 'i', 'c', 'i', 'n', 'g'};
    static const uint8_t legal7[] = {0x97, 0xa5, 'l', 'e', 'g', 'a', 'l'};
    static const uint8_t ads8[] = {0x98, 0xa3, 'a', 'd', 's'};
    assert_non_null(memmem(a.p, a.len, inv9, sizeof inv9));
    assert_non_null(memmem(a.p, a.len, legal7, sizeof legal7));
    assert_non_null(memmem(a.p, a.len, ads8, sizeof ads8));
    /* The hold's tail: nil (no tcf), then [[spend id, city id], 3650]. */
    uint8_t tail[] = {0xc0, 0x92, 0x92, 0, 0, 0xcd, 0x0e, 0x42};
    tail[3] = (uint8_t)ck_schema__field(s, "spend", 5)->id;
    tail[4] = (uint8_t)ck_schema__field(s, "city", 4)->id;
    assert_non_null(memmem(a.p, a.len, tail, sizeof tail));

    for (size_t n = 0; n < a.len; n++) {
        assert_int_equal(ck_schema__decode(&d, a.p, n), CK_EFORMAT);
        assert_null(d);
    }
    for (size_t i = 0; i < a.len; i++) {
        uint8_t saved = a.p[i];
        for (unsigned x = 1; x < 256; x <<= 1) {
            a.p[i] = (uint8_t)(saved ^ x);
            int rc = ck_schema__decode(&d, a.p, a.len);
            assert_true(rc == CK_OK || rc == CK_EFORMAT);
            if (rc == CK_OK) {
                for (uint32_t k = 0; k < d->npurposes; k++) {
                    const ck_schema_purpose *p = &d->purposes[k];
                    if (p->hold.nfields == 0)
                        continue;
                    assert_int_equal(p->basis, CK_BASIS_LEGAL_OBLIGATION);
                    assert_false(p->tcf.set);
                    assert_true(p->hold.days >= 1 && p->hold.days <= CK_SCHEMA_HOLD_DAYS_MAX);
                    for (uint32_t f = 0; f < p->hold.nfields; f++)
                        assert_true(ck_schema__purpose_field(p, p->hold.field_ids[f]) >= 0);
                }
                ck_schema__release(d);
            }
        }
        a.p[i] = saved;
    }

    /* Records that break a rule of the loader are refused. */
    ck_schema_purpose *inv = (ck_schema_purpose *)ck_schema__purpose(s, "invoicing", 9);
    const ck_schema_hold good = inv->hold;
    uint16_t birth = ck_schema__field(s, "birth_date", 10)->id;
    uint16_t spend = ck_schema__field(s, "spend", 5)->id;
    const uint16_t outside[] = {spend, birth}, twice[] = {spend, spend};
    struct {
        const uint16_t *ids;
        uint32_t n, days;
        ck_basis basis;
    } bad[] = {{good.field_ids, 2, 0, CK_BASIS_LEGAL_OBLIGATION},
               {good.field_ids, 2, CK_SCHEMA_HOLD_DAYS_MAX + 1, CK_BASIS_LEGAL_OBLIGATION},
               {outside, 2, 10, CK_BASIS_LEGAL_OBLIGATION},
               {twice, 2, 10, CK_BASIS_LEGAL_OBLIGATION},
               {good.field_ids, 2, 10, CK_BASIS_CONTRACT},
               {good.field_ids, 2, 10, CK_BASIS_CONSENT}};
    for (size_t i = 0; i < CK_ARRAY_LEN(bad); i++) {
        inv->hold.field_ids = bad[i].ids;
        inv->hold.nfields = bad[i].n;
        inv->hold.days = bad[i].days;
        inv->basis = bad[i].basis;
        ck_buf__reset(&b);
        assert_int_equal(ck_schema__encode(&b, s), CK_OK);
        assert_int_equal(ck_schema__decode(&d, b.p, b.len), CK_EFORMAT);
        assert_null(d);
    }
    inv->hold = good;
    inv->basis = CK_BASIS_LEGAL_OBLIGATION;
    /* A 9-element purpose whose 8th element is a tcf, not nil: refused
     * (a hold's purpose never maps TCF signals; the record is canonical). */
    ck_buf__reset(&b);
    assert_int_equal(ck_schema__encode(&b, s), CK_OK);
    uint8_t *at = memmem(b.p, b.len, tail, sizeof tail);
    assert_non_null(at);
    at[0] = 0x90; /* nil -> [] */
    assert_int_equal(ck_schema__decode(&d, b.p, b.len), CK_EFORMAT);
    assert_null(d);
    ck_buf__free(&a);
    ck_buf__free(&b);
    ck_buf__free(&j);
    ck_schema__release(s);
}

/* ------------------------------------------------------------------------ */
/* The snapshot, its lookups and its record                                  */
/* ------------------------------------------------------------------------ */

static void test_example_lookups(void **state)
{
    (void)state;
    size_t len;
    char *json = example_json(&len);
    char err[CK_ERRMSG_MAX];
    ck_schema *s = NULL;
    assert_int_equal(ck_schema__from_json(&s, NULL, json, len, err, sizeof err), CK_OK);
    assert_int_equal(s->version, 1);
    assert_int_equal(s->nfields, 11);
    assert_int_equal(s->npurposes, 5);
    assert_int_equal(s->next_field_id, 12);
    /* Ids in the order of the file. */
    const ck_schema_field *email = ck_schema__field(s, "email", 5);
    assert_non_null(email);
    assert_int_equal(email->id, 1);
    assert_true(email->identifying);
    assert_ptr_equal(ck_schema__field_by_id(s, 1), email);
    assert_null(ck_schema__field(s, "emai", 4));
    assert_null(ck_schema__field_by_id(s, 12));
    const ck_schema_field *allergies = ck_schema__field(s, "allergies", 9);
    assert_int_equal(allergies->sensitivity, CK_SENS_SPECIAL);
    assert_int_equal(ck_schema__field(s, "birth_date", 10)->retention_days, 1095);
    assert_int_equal(ck_schema__field(s, "interests", 9)->type, CK_TYPE_LIST);

    const ck_schema_purpose *m = ck_schema__purpose(s, "marketing.email", 15);
    assert_non_null(m);
    assert_int_equal(m->basis, CK_BASIS_CONSENT);
    assert_int_equal(m->channel.type, CK_CHANNEL_EMAIL);
    assert_int_equal(m->channel.field_id, email->id);
    assert_int_equal(m->channel.cap_count, 2);
    assert_int_equal(m->channel.cap_days, 30);
    const ck_schema_purpose *svc = ck_schema__purpose(s, "service", 7);
    assert_int_equal(svc->basis, CK_BASIS_CONTRACT);
    assert_int_equal(svc->nfields, 10);
    assert_true(ck_schema__purpose_field(svc, allergies->id) < 0);
    const ck_schema_purpose *a = ck_schema__purpose(s, "analytics", 9);
    int at = ck_schema__purpose_field(a, ck_schema__field(s, "postal_code", 11)->id);
    assert_true(at >= 0);
    assert_int_equal(a->min[at].kind, CK_MIN_PREFIX);
    assert_int_equal(a->min[at].prefix, 2);
    assert_null(ck_schema__purpose(s, "marketing", 9));
    /* Sorted by name. */
    for (uint32_t i = 1; i < s->nfields; i++)
        assert_true(strcmp(s->fields[i - 1].name, s->fields[i].name) < 0);
    for (uint32_t i = 1; i < s->npurposes; i++)
        assert_true(strcmp(s->purposes[i - 1].name, s->purposes[i].name) < 0);
    ck_schema__release(s);
    free(json);
}

static void test_record_round_trip_and_hostile(void **state)
{
    (void)state;
    size_t len;
    char *json = example_json(&len);
    char err[CK_ERRMSG_MAX];
    ck_schema *s = NULL, *d = NULL;
    assert_int_equal(ck_schema__from_json(&s, NULL, json, len, err, sizeof err), CK_OK);
    ck_buf a = CK_BUF_INIT, b = CK_BUF_INIT, ja = CK_BUF_INIT, jb = CK_BUF_INIT;
    assert_int_equal(ck_schema__encode(&a, s), CK_OK);
    assert_int_equal(ck_schema__decode(&d, a.p, a.len), CK_OK);
    assert_int_equal(ck_schema__encode(&b, d), CK_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    assert_int_equal(ck_schema__to_json(&ja, s), CK_OK);
    assert_int_equal(ck_schema__to_json(&jb, d), CK_OK);
    assert_int_equal(ja.len, jb.len);
    assert_memory_equal(ja.p, jb.p, ja.len);
    ck_schema__release(d);

    /* Every truncation, and every single-byte change, is refused or gives a
     * consistent snapshot: never a crash (ASan/valgrind watch). */
    for (size_t n = 0; n < a.len; n++) {
        assert_int_equal(ck_schema__decode(&d, a.p, n), CK_EFORMAT);
        assert_null(d);
    }
    for (size_t i = 0; i < a.len; i++) {
        uint8_t saved = a.p[i];
        for (unsigned x = 1; x < 256; x <<= 1) {
            a.p[i] = (uint8_t)(saved ^ x);
            int rc = ck_schema__decode(&d, a.p, a.len);
            assert_true(rc == CK_OK || rc == CK_EFORMAT);
            if (rc == CK_OK) {
                for (uint32_t k = 0; k < d->npurposes; k++)
                    for (uint32_t j = 0; j < d->purposes[k].nfields; j++)
                        assert_non_null(ck_schema__field_by_id(d, d->purposes[k].field_ids[j]));
                ck_schema__release(d);
            }
        }
        a.p[i] = saved;
    }
    /* Trailing bytes. */
    uint8_t zero = 0;
    assert_int_equal(ck_buf__append(&a, &zero, 1), CK_OK);
    assert_int_equal(ck_schema__decode(&d, a.p, a.len), CK_EFORMAT);

    ck_buf__free(&a);
    ck_buf__free(&b);
    ck_buf__free(&ja);
    ck_buf__free(&jb);
    ck_schema__release(s);
    free(json);
}

/* ------------------------------------------------------------------------ */
/* Apply                                                                    */
/* ------------------------------------------------------------------------ */

static void test_no_schema_yet(void **state)
{
    tu_fx *f = *state;
    char *out = (char *)1;
    uint32_t v = 99;
    assert_int_equal(ck_schema_get_json(&out, f->st), CK_ENOTFOUND);
    assert_null(out);
    assert_string_equal(ck_errmsg(f->st), "no schema has been applied to this store");
    assert_int_equal(ck_schema_version(&v, f->st), CK_OK);
    assert_int_equal(v, 0);
}

static void test_apply_show_round_trip(void **state)
{
    tu_fx *f = *state;
    size_t len;
    char *json = example_json(&len);
    ck_schema_apply_result r = CK_SCHEMA_APPLY_RESULT_INIT;
    assert_int_equal(ck_schema_apply(f->st, json, len, 0, &r), CK_OK);
    assert_int_equal(r.schema_version, 1);
    assert_int_equal(r.changed, 1);
    assert_int_equal(r.fields_added.count, 11);
    assert_int_equal(r.purposes_added.count, 5);
    assert_int_equal(r.fields_removed.count, 0);
    assert_string_equal(r.fields_added.names[0], "allergies"); /* name order */
    assert_true(has_name(&r.purposes_added, "marketing.email"));
    ck_schema_apply_result_free(&r);
    assert_null(r.priv_);

    char *shown = NULL;
    assert_int_equal(ck_schema_get_json(&shown, f->st), CK_OK);
    json_error_t je;
    json_t *j = json_loads(shown, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    json_t *email = json_object_get(json_object_get(j, "fields"), "email");
    assert_string_equal(json_string_value(json_object_get(email, "type")), "string");
    assert_true(json_is_true(json_object_get(email, "identifying")));
    json_t *an = json_object_get(json_object_get(j, "purposes"), "analytics");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(an, "minimize"), "total_spend_cents")),
        "band:5000,20000,100000");
    assert_string_equal(json_string_value(json_object_get(an, "basis")), "legitimate_interest");
    json_t *me = json_object_get(json_object_get(j, "purposes"), "marketing.email");
    json_t *cap = json_object_get(json_object_get(me, "channel"), "cap");
    assert_int_equal(json_integer_value(json_object_get(cap, "count")), 2);
    assert_int_equal(json_integer_value(json_object_get(cap, "days")), 30);
    json_decref(j);

    /* What show prints applies back as the same schema: no new version. */
    unsigned char before[32], after[32];
    tu_digest_dir(before, f->dir);
    assert_int_equal(apply(f->st, shown, 0, &r), CK_OK);
    assert_int_equal(r.changed, 0);
    assert_int_equal(r.schema_version, 1);
    ck_schema_apply_result_free(&r);
    tu_digest_dir(after, f->dir);
    assert_memory_equal(before, after, 32);
    ck_free(shown);

    /* And it survives closing and opening the store. */
    ck_close(f->st);
    ck_options o = key_opts(f);
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_OK);
    char *again = NULL;
    assert_int_equal(ck_schema_get_json(&again, f->st), CK_OK);
    assert_non_null(strstr(again, "\"version\":1"));
    ck_free(again);
    assert_int_equal(field_id(f->st, "email"), 1);
    free(json);
}

static void test_versions_and_ids(void **state)
{
    tu_fx *f = *state;
    ck_schema_apply_result r = CK_SCHEMA_APPLY_RESULT_INIT;
    uint32_t v;
    const char *s1 = "{\"fields\":{" F_EMAIL "," F_CITY "}}";
    assert_int_equal(apply(f->st, s1, 0, &r), CK_OK);
    assert_int_equal(r.schema_version, 1);
    ck_schema_apply_result_free(&r);
    assert_int_equal(field_id(f->st, "email"), 1);
    assert_int_equal(field_id(f->st, "city"), 2);

    /* Identical (other order, other spacing): no new version. */
    assert_int_equal(apply(f->st, "{ \"fields\": {" F_CITY ",  " F_EMAIL "} }", 0, &r), CK_OK);
    assert_int_equal(r.changed, 0);
    assert_int_equal(r.schema_version, 1);
    ck_schema_apply_result_free(&r);
    assert_int_equal(ck_schema_version(&v, f->st), CK_OK);
    assert_int_equal(v, 1);

    /* Adding a field keeps the ids of the others. */
    assert_int_equal(apply(f->st, "{\"fields\":{" F_SPEND "," F_EMAIL "," F_CITY "}}", 0, &r),
                     CK_OK);
    assert_int_equal(r.schema_version, 2);
    assert_int_equal(r.fields_added.count, 1);
    assert_string_equal(r.fields_added.names[0], "spend");
    ck_schema_apply_result_free(&r);
    assert_int_equal(field_id(f->st, "email"), 1);
    assert_int_equal(field_id(f->st, "city"), 2);
    assert_int_equal(field_id(f->st, "spend"), 3);

    /* Removing a field without data is free; re-adding it gives a new id. */
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "," F_CITY "}}", 0, &r), CK_OK);
    assert_int_equal(r.schema_version, 3);
    assert_int_equal(r.fields_removed.count, 1);
    assert_string_equal(r.fields_removed.names[0], "spend");
    ck_schema_apply_result_free(&r);
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "," F_CITY "," F_SPEND "}}", 0, &r),
                     CK_OK);
    assert_int_equal(r.schema_version, 4);
    ck_schema_apply_result_free(&r);
    assert_int_equal(field_id(f->st, "spend"), 4);

    /* Changing a field's attributes and a purpose: reported as changed. */
    assert_int_equal(apply(f->st,
                           "{\"fields\":{" F_EMAIL "," F_SPEND
                           ",\"city\":{\"type\":\"string\",\"sensitivity\":\"public\"}},"
                           "\"purposes\":{\"p\":{" P_HEAD ",\"fields\":[\"city\"]}}}",
                           0, &r),
                     CK_OK);
    assert_int_equal(r.schema_version, 5);
    assert_int_equal(r.fields_changed.count, 1);
    assert_string_equal(r.fields_changed.names[0], "city");
    assert_int_equal(r.purposes_added.count, 1);
    ck_schema_apply_result_free(&r);
    assert_int_equal(field_id(f->st, "city"), 2);
    assert_int_equal(apply(f->st,
                           "{\"fields\":{" F_EMAIL "," F_SPEND
                           ",\"city\":{\"type\":\"string\",\"sensitivity\":\"public\"}},"
                           "\"purposes\":{\"p\":{" P_HEAD ",\"fields\":[\"city\",\"email\"]}}}",
                           0, &r),
                     CK_OK);
    assert_int_equal(r.schema_version, 6);
    assert_int_equal(r.purposes_changed.count, 1);
    assert_string_equal(r.purposes_changed.names[0], "p");
    assert_int_equal(r.fields_changed.count, 0);
    ck_schema_apply_result_free(&r);

    /* The result is optional. */
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "}}", 0, NULL), CK_OK);
    assert_int_equal(ck_schema_version(&v, f->st), CK_OK);
    assert_int_equal(v, 7);
}

static void test_remove_field_with_data(void **state)
{
    tu_fx *f = *state;
    ck_schema_apply_result r = CK_SCHEMA_APPLY_RESULT_INIT;
    const char *full = "{\"fields\":{" F_EMAIL "," F_CITY "," F_SPEND "}}";
    assert_int_equal(apply(f->st, full, 0, NULL), CK_OK);
    uint16_t city = field_id(f->st, "city"), spend = field_id(f->st, "spend");
    ck_value vs = {.type = CK_TYPE_STRING, .u.str = {"Lyon", 4}};
    ck_value vi = {.type = CK_TYPE_INT, .u.i = 4200};
    uint8_t sid[CK_SUBJECT_ID_BYTES];
    put_value(f->st, sid, city, &vs);
    put_value(f->st, NULL, spend, &vi);
    put_value(f->st, NULL, spend, &vi);
    put_value(f->st, NULL, field_id(f->st, "email"), &vs);
    assert_int_equal(value_count(f->st), 4);

    /* Removing city: refused, with the count, and nothing changes. */
    unsigned char before[32], after[32];
    tu_digest_dir(before, f->dir);
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "," F_SPEND "}}", 0, &r), CK_EDENIED);
    assert_string_equal(ck_errmsg(f->st),
                        "fields.city: 1 subject holds a value for this field; removing it would "
                        "delete it: apply with force to do so");
    assert_null(r.priv_);
    /* Retyping spend (int -> float): refused, naming the two subjects. */
    assert_int_equal(apply(f->st,
                           "{\"fields\":{" F_EMAIL "," F_CITY
                           ",\"spend\":{\"type\":\"float\",\"sensitivity\":\"personal\"}}}",
                           0, &r),
                     CK_EDENIED);
    assert_string_equal(ck_errmsg(f->st),
                        "fields.spend: 2 subjects hold a value for this field; changing its type "
                        "would delete them: apply with force to do so");
    /* Both at once: the first in name order, and how many more. */
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "}}", 0, &r), CK_EDENIED);
    assert_string_equal(ck_errmsg(f->st),
                        "fields.city: 1 subject holds a value for this field; removing it would "
                        "delete it (and 1 more field hold values): apply with force to do so");
    tu_digest_dir(after, f->dir);
    assert_memory_equal(before, after, 32);
    uint32_t v;
    assert_int_equal(ck_schema_version(&v, f->st), CK_OK);
    assert_int_equal(v, 1);

    /* Forced: applied, the values deleted. */
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "," F_SPEND "}}", CK_SCHEMA_FORCE, &r),
                     CK_OK);
    assert_int_equal(r.schema_version, 2);
    assert_int_equal(r.values_deleted, 1);
    assert_int_equal(r.fields_removed.count, 1);
    assert_string_equal(r.fields_removed.names[0], "city");
    ck_schema_apply_result_free(&r);
    assert_int_equal(value_count(f->st), 3);

    assert_int_equal(apply(f->st,
                           "{\"fields\":{" F_EMAIL
                           ",\"spend\":{\"type\":\"float\",\"sensitivity\":\"personal\"}}}",
                           CK_SCHEMA_FORCE, &r),
                     CK_OK);
    assert_int_equal(r.schema_version, 3);
    assert_int_equal(r.values_deleted, 2);
    assert_int_equal(r.fields_retyped.count, 1);
    assert_string_equal(r.fields_retyped.names[0], "spend");
    assert_int_equal(r.fields_added.count, 0);
    ck_schema_apply_result_free(&r);
    assert_int_equal(value_count(f->st), 1); /* email's stays */
    /* A retyped field gets a fresh id: old records can never be read as
     * the new type. */
    assert_int_equal(field_id(f->st, "spend"), 4);
}

static void test_invalid_changes_nothing(void **state)
{
    tu_fx *f = *state;
    size_t len;
    char *json = example_json(&len);
    assert_int_equal(ck_schema_apply(f->st, json, len, 0, NULL), CK_OK);
    unsigned char before[32], after[32];
    tu_digest_dir(before, f->dir);
    ck_schema_apply_result r = CK_SCHEMA_APPLY_RESULT_INIT;
    const char *bad = "{\"fields\":{\"email\":{\"type\":\"strng\",\"sensitivity\":\"personal\"}}}";
    assert_int_equal(apply(f->st, bad, 0, &r), CK_EINVAL);
    assert_string_equal(ck_errmsg(f->st),
                        "fields.email.type: unknown type \"strng\" (expected string, int, float, "
                        "bool, date, timestamp, bytes, list)");
    assert_int_equal(r.changed, 0);
    ck_schema_apply_result_free(&r);
    assert_int_equal(apply(f->st, "{", CK_SCHEMA_FORCE, NULL), CK_EINVAL);
    assert_int_equal(ck_schema_apply(f->st, "", 0, 0, NULL), CK_EINVAL);
    assert_int_equal(apply(f->st, "{}", 0x80, NULL), CK_EINVAL);
    tu_digest_dir(after, f->dir);
    assert_memory_equal(before, after, 32);
    free(json);
}

static void test_read_only_refused(void **state)
{
    tu_fx *f = *state;
    ck_close(f->st);
    ck_options o = key_opts(f);
    o.flags = CK_OPEN_RDONLY;
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_OK);
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "}}", 0, NULL), CK_EDENIED);
}

/* Overwrite one byte of the stored record of version 1. */
static int tamper_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    (void)ctx;
    uint8_t key[5] = {'v', 0, 0, 0, 1};
    MDB_val k = {sizeof key, key}, v;
    if (mdb_get(txn, st->dbi_schema, &k, &v) != 0)
        return CK_EINTERNAL;
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size / 2] ^= 1;
    MDB_val nv = {v.mv_size, copy};
    int mrc = mdb_put(txn, st->dbi_schema, &k, &nv, 0);
    free(copy);
    return mrc == 0 ? CK_OK : CK_EINTERNAL;
}

static void test_tampered_record(void **state)
{
    tu_fx *f = *state;
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "}}", 0, NULL), CK_OK);
    assert_int_equal(ck_env__write(f->st, &f->st->data, tamper_txn, NULL), CK_OK);
    ck_close(f->st);
    ck_options o = key_opts(f);
    f->st = NULL;
    char err[CK_ERRMSG_MAX] = "";
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_EINTEGRITY);
    assert_string_equal(err, "schema version 1 does not authenticate (tampered, or from another "
                             "store or version)");
}

/* Another process applies a schema; this one sees it at its next
 * ck_schema__get. Each process opens the store itself. */
static void test_other_process_applies(void **state)
{
    tu_fx *f = *state;
    assert_int_equal(apply(f->st, "{\"fields\":{" F_EMAIL "}}", 0, NULL), CK_OK);
    ck_close(f->st);
    f->st = NULL;

    int go[2], done[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(done), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char b;
        close(go[1]);
        close(done[0]);
        if (read(go[0], &b, 1) != 1)
            _exit(10);
        ck_options o = key_opts(f);
        ck_store *st = NULL;
        if (ck_open(&st, f->dir, &o) != CK_OK)
            _exit(11);
        const char *s2 = "{\"fields\":{" F_EMAIL "," F_CITY "}}";
        if (ck_schema_apply(st, s2, strlen(s2), 0, NULL) != CK_OK)
            _exit(12);
        ck_close(st);
        if (write(done[1], "x", 1) != 1)
            _exit(13);
        _exit(0);
    }
    close(go[0]);
    close(done[1]);
    ck_options o = key_opts(f);
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_OK);

    MDB_txn *t;
    ck_schema *s1 = NULL, *s2 = NULL;
    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &t), CK_OK);
    assert_int_equal(ck_schema__get(&s1, f->st, t), CK_OK);
    ck_env__read_end(&f->st->data, t);
    assert_int_equal(s1->version, 1);
    assert_null(ck_schema__field(s1, "city", 4));

    char b;
    assert_int_equal(write(go[1], "x", 1), 1);
    assert_int_equal(read(done[0], &b, 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    assert_int_equal(ck_env__read_begin(f->st, &f->st->data, &t), CK_OK);
    assert_int_equal(ck_schema__get(&s2, f->st, t), CK_OK);
    ck_env__read_end(&f->st->data, t);
    assert_int_equal(s2->version, 2);
    assert_non_null(ck_schema__field(s2, "city", 4));
    /* The old snapshot stays valid for whoever still holds it. */
    assert_int_equal(s1->version, 1);
    assert_string_equal(s1->fields[0].name, "email");
    ck_schema__release(s1);
    ck_schema__release(s2);
    close(go[1]);
    close(done[0]);
}

static void test_tcf_changes(void **state)
{
    tu_fx *f = *state;
    ck_schema_apply_result r = CK_SCHEMA_APPLY_RESULT_INIT;
    const char *v1 =
        "{" FIELDS ",\"purposes\":{\"x\":{" P_HEAD ",\"fields\":[\"email\"],"
        "\"tcf\":{\"purposes\":[1,4],\"vendor\":755}},\"y\":{" P_HEAD ",\"fields\":[\"city\"]}}}";
    assert_int_equal(apply(f->st, v1, 0, &r), CK_OK);
    assert_int_equal(r.schema_version, 1);
    ck_schema_apply_result_free(&r);
    /* Another order of the same ids, spelled-out defaults: identical. */
    const char *same = "{" FIELDS ",\"purposes\":{\"x\":{" P_HEAD ",\"fields\":[\"email\"],"
                       "\"tcf\":{\"special_features\":[],\"purposes\":[4,1],\"vendor\":755,"
                       "\"publisher\":false}},\"y\":{" P_HEAD ",\"fields\":[\"city\"]}}}";
    assert_int_equal(apply(f->st, same, 0, &r), CK_OK);
    assert_int_equal(r.changed, 0);
    ck_schema_apply_result_free(&r);
    /* What show prints applies back unchanged. */
    char *shown = NULL;
    assert_int_equal(ck_schema_get_json(&shown, f->st), CK_OK);
    assert_non_null(strstr(shown, "\"tcf\":{\"purposes\":[1,4],\"special_features\":[],"
                                  "\"vendor\":755}"));
    assert_int_equal(apply(f->st, shown, 0, &r), CK_OK);
    assert_int_equal(r.changed, 0);
    ck_schema_apply_result_free(&r);
    ck_free(shown);
    /* Each attribute of a mapping is a change of its purpose. */
    static const char *const changes[] = {
        "{\"purposes\":[1,4],\"vendor\":756}",
        "{\"purposes\":[1,4],\"publisher\":true}",
        "{\"purposes\":[1,4]}",
        "{\"purposes\":[1],\"special_features\":[2]}",
        "{\"purposes\":[1]}",
    };
    uint32_t version = 1;
    for (size_t i = 0; i < CK_ARRAY_LEN(changes); i++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{" FIELDS ",\"purposes\":{\"x\":{" P_HEAD ",\"fields\":[\"email\"],"
                 "\"tcf\":%s},\"y\":{" P_HEAD ",\"fields\":[\"city\"]}}}",
                 changes[i]);
        assert_int_equal(apply(f->st, json, 0, &r), CK_OK);
        assert_int_equal(r.changed, 1);
        assert_int_equal(r.schema_version, ++version);
        assert_int_equal(r.purposes_changed.count, 1);
        assert_string_equal(r.purposes_changed.names[0], "x");
        ck_schema_apply_result_free(&r);
    }
    /* Dropping the mapping, and adding one to another purpose. */
    const char *v_last = "{" FIELDS ",\"purposes\":{\"x\":{" P_HEAD ",\"fields\":[\"email\"]},"
                         "\"y\":{" P_HEAD ",\"fields\":[\"city\"],\"tcf\":{\"purposes\":[1]}}}}";
    assert_int_equal(apply(f->st, v_last, 0, &r), CK_OK);
    assert_int_equal(r.purposes_changed.count, 2);
    ck_schema_apply_result_free(&r);
    /* It survives closing and opening the store (the stored record). */
    ck_close(f->st);
    ck_options o = key_opts(f);
    assert_int_equal(ck_open(&f->st, f->dir, &o), CK_OK);
    assert_int_equal(ck_schema_get_json(&shown, f->st), CK_OK);
    assert_non_null(strstr(shown, "\"y\":{\"basis\":\"consent\""));
    assert_non_null(strstr(shown, "\"tcf\":{\"purposes\":[1],\"special_features\":[]}"));
    assert_null(strstr(shown, "\"vendor\""));
    ck_free(shown);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_top_level),
        cmocka_unit_test(test_invalid_json_syntax),
        cmocka_unit_test(test_invalid_field),
        cmocka_unit_test(test_invalid_names_and_limits),
        cmocka_unit_test(test_invalid_purpose),
        cmocka_unit_test(test_invalid_minimize),
        cmocka_unit_test(test_invalid_channel),
        cmocka_unit_test(test_invalid_tcf),
        cmocka_unit_test(test_tcf_record_and_json),
        cmocka_unit_test(test_example_lookups),
        cmocka_unit_test(test_record_round_trip_and_hostile),
        cmocka_unit_test_setup_teardown(test_no_schema_yet, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_apply_show_round_trip, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_versions_and_ids, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_remove_field_with_data, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_changes_nothing, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_only_refused, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tampered_record, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_other_process_applies, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tcf_changes, setup, tu_fx_teardown),
        cmocka_unit_test(test_invalid_hold),
        cmocka_unit_test(test_hold_record_and_json),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
