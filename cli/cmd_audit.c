/*
 * cmd_audit.c - ckstore audit log | report | verify | checkpoint.
 *
 * Uses only the public header: the audit log's reader, verifier and
 * checkpoints as any application would.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char HELP_AUDIT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] audit SUBCOMMAND [OPTIONS]\n"
    "\n"
    "The store's tamper-evident audit log: every release, consent change,\n"
    "export, erasure and key operation, by actor, purpose and field names -\n"
    "never a value. Subjects appear as audit pseudonyms (hex).\n"
    "\n"
    "Subcommands:\n"
    "  log [--actor A] [--action X] [--purpose P] [--since T] [--until T]\n"
    "      [--subject ID | --ref R | --lookup FIELD=VALUE | --alias A]\n"
    "        print the matching entries as JSON Lines, oldest first. T is RFC 3339\n"
    "        (2025-01-31T12:00:00Z), a date (2025-01-31, midnight UTC) or\n"
    "        milliseconds since the epoch; --since is inclusive, --until exclusive.\n"
    "        A subject selector keeps that subject's entries only (it is turned\n"
    "        into its audit pseudonym; an erased subject has none: exit 3).\n"
    "  report [--actor A] [--purpose P] [--since T] [--until T]\n"
    "        the DPO's summary as one JSON object (--format text: readable):\n"
    "        releases and withheld fields by purpose, actor and reason; consent\n"
    "        changes by purpose and state; contacts by channel; erasures, exports,\n"
    "        schema and key operations; and, from the current consent state,\n"
    "        subjects granted / withdrawn / refused / objected / expired per\n"
    "        purpose and the consents expiring in the next 30 days. Counts and\n"
    "        names only, never a value.\n"
    "  verify [--checkpoint FILE]\n"
    "        walk the whole chain; print {\"ok\":true,\"entries\":N,\"head\":{...}}, or\n"
    "        name the first bad entry and exit 5. With --checkpoint, also check\n"
    "        the checkpoint's signature and that the log still extends it (which\n"
    "        catches entries removed from the end).\n"
    "  checkpoint [--signing-key FILE]\n"
    "        log a checkpoint entry and print the head signed with Ed25519:\n"
    "        {\"seq\":N,\"hash\":HEX,\"time\":RFC3339,\"time_ms\":N,\"store_id\":HEX,\n"
    "         \"public_key\":HEX,\"signature\":HEX}. Keep it somewhere else. The\n"
    "        signing key is its own 32-byte file (default DIR/audit-signing.key,\n"
    "        created mode 0600 on first use), not derived from the store's key.\n"
    "\n"
    "A torn last entry left by a crash is repaired when the store is opened and\n"
    "reported as a warning on stderr; it is not tampering.\n";

/* ------------------------------------------------------------------------ */
/* Time                                                                     */
/* ------------------------------------------------------------------------ */

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static void format_time(char out[32], uint64_t ms)
{
    time_t s = (time_t)(ms / 1000u);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL) {
        snprintf(out, 32, "?");
        return;
    }
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03uZ", base, (unsigned)(ms % 1000u));
}

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int two(const char *p)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
        return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

/* Milliseconds since the epoch of an RFC 3339 timestamp, a date
 * (YYYY-MM-DD, midnight UTC) or a number of milliseconds. */
static int parse_time(const char *s, uint64_t *out)
{
    if (all_digits(s)) {
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0')
            return -1;
        *out = v;
        return 0;
    }
    size_t n = strlen(s);
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return -1;
    int y = two(s) * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8);
    if (two(s) < 0 || two(s + 2) < 0 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    long frac_ms = 0, off_s = 0;
    if (n > 10) {
        if ((s[10] != 'T' && s[10] != 't') || n < 20 || s[13] != ':' || s[16] != ':')
            return -1;
        int h = two(s + 11), mi = two(s + 14), se = two(s + 17);
        if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
            return -1;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = se;
        const char *p = s + 19;
        if (*p == '.') {
            int digits = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                if (digits < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
            if (digits == 0)
                return -1;
            for (; digits < 3; digits++)
                frac_ms *= 10;
        }
        if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
            off_s = 0;
        } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
            int oh = two(p + 1), om = two(p + 4);
            if (oh < 0 || oh > 23 || om < 0 || om > 59)
                return -1;
            off_s = (oh * 60L + om) * 60L * (*p == '+' ? 1 : -1);
        } else {
            return -1;
        }
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || (int64_t)t - off_s < 0)
        return -1;
    *out = (uint64_t)((int64_t)t - off_s) * 1000u + (uint64_t)frac_ms;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static json_t *hex_json(const unsigned char *p, size_t n)
{
    char buf[2 * 64 + 1];
    cli_hex(buf, p, n);
    return json_string(buf);
}

static int unhex(unsigned char *out, size_t n, const char *hex)
{
    if (hex == NULL || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char ch = hex[2 * i + (size_t)j];
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

static void warn_recovered(ck_store *st)
{
    uint64_t n = ck_audit_recovered(st);
    if (n > 0)
        fprintf(stderr,
                "ckstore: warning: the audit log ended in a torn entry (%" PRIu64
                " bytes, left by a crash during a write); it was truncated and the repair "
                "logged\n",
                n);
}

static const char *problem_name(ck_audit_problem p)
{
    switch (p) {
    case CK_AUDIT_PROBLEM_HASH:
        return "bad_hash";
    case CK_AUDIT_PROBLEM_SEQ:
        return "bad_seq";
    case CK_AUDIT_PROBLEM_UNDECODABLE:
        return "undecodable";
    case CK_AUDIT_PROBLEM_MISSING:
        return "missing";
    case CK_AUDIT_PROBLEM_CHECKPOINT:
        return "checkpoint";
    default:
        return "none";
    }
}

static json_t *record_json(const ck_audit_record *r)
{
    char t[32];
    format_time(t, r->time_ms);
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "actor", json_string(r->actor));
    json_object_set_new(o, "action", json_string(r->action));
    if (r->purpose != NULL)
        json_object_set_new(o, "purpose", json_string(r->purpose));
    if (r->recipient != NULL)
        json_object_set_new(o, "recipient", json_string(r->recipient));
    if (r->subject != NULL)
        json_object_set_new(o, "subject", hex_json(r->subject, CK_AUDIT_PSEUDONYM_BYTES));
    if (r->n_released > 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_released; i++)
            json_array_append_new(a, json_string(r->released[i]));
        json_object_set_new(o, "released", a);
    }
    if (r->n_withheld > 0) {
        json_t *w = json_object();
        for (size_t i = 0; i < r->n_withheld; i++)
            json_object_set_new(w, r->withheld[i].field, json_string(r->withheld[i].reason));
        json_object_set_new(o, "withheld", w);
    }
    if (r->n_detail > 0) {
        json_t *d = json_object();
        for (size_t i = 0; i < r->n_detail; i++)
            json_object_set_new(d, r->detail[i].key,
                                r->detail[i].str != NULL
                                    ? json_string(r->detail[i].str)
                                    : json_integer((json_int_t)r->detail[i].num));
        json_object_set_new(o, "detail", d);
    }
    return o;
}

static void record_text(const ck_audit_record *r)
{
    char t[32];
    format_time(t, r->time_ms);
    printf("%s  #%" PRIu64 "  %s  %s", t, r->seq, r->actor, r->action);
    if (r->purpose != NULL)
        printf("  purpose=%s", r->purpose);
    if (r->recipient != NULL)
        printf("  recipient=%s", r->recipient);
    if (r->subject != NULL) {
        char h[2 * CK_AUDIT_PSEUDONYM_BYTES + 1];
        cli_hex(h, r->subject, CK_AUDIT_PSEUDONYM_BYTES);
        printf("  subject=%s", h);
    }
    for (size_t i = 0; i < r->n_released; i++)
        printf("%s%s", i == 0 ? "  released=" : ",", r->released[i]);
    for (size_t i = 0; i < r->n_withheld; i++)
        printf("%s%s:%s", i == 0 ? "  withheld=" : ",", r->withheld[i].field,
               r->withheld[i].reason);
    for (size_t i = 0; i < r->n_detail; i++) {
        if (r->detail[i].str != NULL)
            printf("  %s=%s", r->detail[i].key, r->detail[i].str);
        else
            printf("  %s=%" PRId64, r->detail[i].key, r->detail[i].num);
    }
    putchar('\n');
}

/* ------------------------------------------------------------------------ */
/* audit log                                                                */
/* ------------------------------------------------------------------------ */

static int audit_log(cli *c, int argc, char **argv)
{
    ck_audit_filter f = CK_AUDIT_FILTER_INIT;
    cli_who w = CLI_WHO_INIT;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"actor", required_argument, NULL, 'a'},
                                         {"action", required_argument, NULL, 'x'},
                                         {"purpose", required_argument, NULL, 'p'},
                                         {"since", required_argument, NULL, 's'},
                                         {"until", required_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r > 0)
            return r;
        if (r == 0)
            continue;
        switch (ch) {
        case 'a':
            f.actor = optarg;
            break;
        case 'x':
            f.action = optarg;
            break;
        case 'p':
            f.purpose = optarg;
            break;
        case 's':
        case 'u':
            if (parse_time(optarg, ch == 's' ? &f.since_ms : &f.until_ms) != 0)
                return cli_fail(EXIT_USAGE, "--%s: expected RFC 3339, YYYY-MM-DD or milliseconds",
                                ch == 's' ? "since" : "until");
            break;
        default:
            return cli_bad_option(argv, "audit log");
        }
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "audit log takes no arguments (see ckstore audit --help)");
    if (w.given > 0) {
        int code = cli_who_check(&w, "audit log", f.purpose, NULL);
        if (code != EXIT_OK)
            return code;
    }

    ck_store *st = NULL;
    int code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    warn_recovered(st);
    unsigned char pn[CK_AUDIT_PSEUDONYM_BYTES];
    int rc;
    if (w.given > 0) {
        rc = ck_audit_subject(pn, st, &w.who);
        if (rc != CK_OK) {
            code = cli_fail_rc(rc, st, NULL, "audit log: cannot find the subject");
            ck_close(st);
            return code;
        }
        f.subject = pn;
    }
    ck_audit_cursor *cur = NULL;
    rc = ck_audit_query(&cur, st, &f);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "cannot read the audit log");
        ck_close(st);
        return code;
    }
    const ck_audit_record *r;
    while ((rc = ck_audit_next(cur, &r)) == CK_OK) {
        if (c->format == FORMAT_TEXT) {
            record_text(r);
            continue;
        }
        json_t *o = record_json(r);
        if (o == NULL || json_dumpf(o, stdout, JSON_COMPACT) != 0) {
            json_decref(o);
            rc = CK_ENOMEM;
            break;
        }
        json_decref(o);
        fputc('\n', stdout);
    }
    code = EXIT_OK;
    if (rc != CK_ENOTFOUND)
        code = cli_fail_rc(rc, st, NULL, "audit log");
    ck_audit_cursor_free(cur);
    ck_close(st);
    return code;
}

/* ------------------------------------------------------------------------ */
/* audit report                                                             */
/* ------------------------------------------------------------------------ */

static json_int_t jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* "  key=n, key=n" of an object of counters, in key order. */
static void print_counts(const json_t *o)
{
    const char *k;
    json_t *v;
    int first = 1;
    json_t *obj = (json_t *)o;
    for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
        k = json_object_iter_key(it);
        v = json_object_iter_value(it);
        if (json_is_integer(v)) {
            printf("%s%s=%lld", first ? "" : ", ", k, (long long)json_integer_value(v));
            first = 0;
        }
    }
    if (first)
        printf("-");
}

static void report_text(const json_t *j)
{
    const json_t *range = json_object_get(j, "range"), *filter = json_object_get(j, "filter");
    const char *first = json_string_value(json_object_get(range, "first"));
    const char *last = json_string_value(json_object_get(range, "last"));
    printf("Audit report: %lld entries", (long long)jint(j, "entries"));
    if (first != NULL)
        printf(", %s .. %s", first, last != NULL ? last : "?");
    putchar('\n');
    static const char *const fkeys[] = {"since", "until", "actor", "purpose"};
    for (size_t i = 0; i < sizeof fkeys / sizeof fkeys[0]; i++) {
        const char *v = json_string_value(json_object_get(filter, fkeys[i]));
        if (v != NULL)
            printf("  filter %s: %s\n", fkeys[i], v);
    }
    printf("\nReleases: %lld, segment answers: %lld\n", (long long)jint(j, "releases"),
           (long long)jint(j, "segment_answers"));
    const char *k;
    json_t *v;
    json_t *purposes = json_object_get(j, "purposes");
    for (void *it = json_object_iter(purposes); it != NULL;
         it = json_object_iter_next(purposes, it)) {
        k = json_object_iter_key(it);
        v = json_object_iter_value(it);
        printf("  purpose %s: releases %lld, segment answers %lld, fields released %lld\n", k,
               (long long)jint(v, "releases"), (long long)jint(v, "segment_answers"),
               (long long)jint(v, "fields_released"));
        printf("    withheld: ");
        print_counts(json_object_get(v, "withheld"));
        putchar('\n');
    }
    json_t *actors = json_object_get(j, "actors");
    for (void *it = json_object_iter(actors); it != NULL; it = json_object_iter_next(actors, it)) {
        k = json_object_iter_key(it);
        v = json_object_iter_value(it);
        printf("  actor %s: releases %lld, segment answers %lld\n", k,
               (long long)jint(v, "releases"), (long long)jint(v, "segment_answers"));
    }
    const json_t *cc = json_object_get(j, "consent_changes");
    printf("\nConsent changes: %lld\n", (long long)jint(cc, "total"));
    json_t *changes = json_object_get(cc, "by_purpose");
    for (void *it = json_object_iter(changes); it != NULL;
         it = json_object_iter_next(changes, it)) {
        k = json_object_iter_key(it);
        v = json_object_iter_value(it);
        printf("  %s: ", k);
        print_counts(v);
        putchar('\n');
    }
    const json_t *ct = json_object_get(j, "contacts");
    printf("Contacts: %lld (", (long long)jint(ct, "total"));
    print_counts(json_object_get(ct, "by_channel"));
    printf(")\n");
    printf("Erasures: %lld, exports: %lld, schema changes: %lld, key operations: %lld\n",
           (long long)jint(j, "erasures"), (long long)jint(j, "exports"),
           (long long)jint(j, "schema_changes"), (long long)jint(j, "key_operations"));
    const json_t *now = json_object_get(j, "consents_now");
    const json_t *ps = json_object_get(now, "purposes");
    printf("\nConsent now (%s):\n", json_string_value(json_object_get(now, "at")) != NULL
                                        ? json_string_value(json_object_get(now, "at"))
                                        : "?");
    if (!json_is_object(ps) || json_object_size(ps) == 0)
        printf("  (no purposes)\n");
    json_t *nowp = (json_t *)ps;
    for (void *it = json_object_iter(nowp); it != NULL; it = json_object_iter_next(nowp, it)) {
        k = json_object_iter_key(it);
        v = json_object_iter_value(it);
        printf("  %s (%s): granted %lld, withdrawn %lld, refused %lld, objected %lld, "
               "expired %lld; expiring in 30 days %lld\n",
               k, json_string_value(json_object_get(v, "basis")), (long long)jint(v, "granted"),
               (long long)jint(v, "withdrawn"), (long long)jint(v, "refused"),
               (long long)jint(v, "objected"), (long long)jint(v, "expired"),
               (long long)jint(v, "expiring_30d"));
    }
}

static int audit_report(cli *c, int argc, char **argv)
{
    ck_audit_filter f = CK_AUDIT_FILTER_INIT;
    static const struct option opts[] = {{"actor", required_argument, NULL, 'a'},
                                         {"purpose", required_argument, NULL, 'p'},
                                         {"since", required_argument, NULL, 's'},
                                         {"until", required_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'a':
            f.actor = optarg;
            break;
        case 'p':
            f.purpose = optarg;
            break;
        case 's':
        case 'u':
            if (parse_time(optarg, ch == 's' ? &f.since_ms : &f.until_ms) != 0)
                return cli_fail(EXIT_USAGE, "--%s: expected RFC 3339, YYYY-MM-DD or milliseconds",
                                ch == 's' ? "since" : "until");
            break;
        default:
            return cli_bad_option(argv, "audit report");
        }
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "audit report takes no arguments (see ckstore audit --help)");

    ck_store *st = NULL;
    int code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    warn_recovered(st);
    char *text = NULL;
    int rc = ck_audit_report_json(&text, st, &f);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "cannot make the audit report");
        ck_close(st);
        return code;
    }
    ck_close(st);
    json_t *j = json_loads(text, 0, NULL);
    ck_free(text);
    if (j == NULL)
        return cli_fail(EXIT_OTHER, "audit report: out of memory");
    if (c->format == FORMAT_TEXT) {
        report_text(j);
        json_decref(j);
        return EXIT_OK;
    }
    return cli_print_json(j);
}

/* ------------------------------------------------------------------------ */
/* audit verify                                                             */
/* ------------------------------------------------------------------------ */

static int read_checkpoint(ck_audit_checkpoint *cp, const char *path)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (j == NULL)
        return cli_fail(errno == ENOENT ? EXIT_NOTFOUND : EXIT_INVALID,
                        "cannot read checkpoint %s: %s (line %d)", path, err.text, err.line);
    memset(cp, 0, sizeof *cp);
    cp->version = CK_AUDIT_CHECKPOINT_VERSION;
    json_t *seq = json_object_get(j, "seq"), *tms = json_object_get(j, "time_ms");
    const char *time_s = json_string_value(json_object_get(j, "time"));
    int bad = !json_is_integer(seq) || json_integer_value(seq) <= 0;
    if (!bad)
        cp->seq = (uint64_t)json_integer_value(seq);
    if (!bad && json_is_integer(tms) && json_integer_value(tms) >= 0)
        cp->time_ms = (uint64_t)json_integer_value(tms);
    else if (!bad)
        bad = time_s == NULL || parse_time(time_s, &cp->time_ms) != 0;
    bad = bad ||
          unhex(cp->hash, sizeof cp->hash, json_string_value(json_object_get(j, "hash"))) != 0 ||
          unhex(cp->store_id, sizeof cp->store_id,
                json_string_value(json_object_get(j, "store_id"))) != 0 ||
          unhex(cp->public_key, sizeof cp->public_key,
                json_string_value(json_object_get(j, "public_key"))) != 0 ||
          unhex(cp->signature, sizeof cp->signature,
                json_string_value(json_object_get(j, "signature"))) != 0;
    json_decref(j);
    if (bad)
        return cli_fail(EXIT_INVALID,
                        "%s is not a checkpoint (seq, hash, time, store_id, public_key, "
                        "signature)",
                        path);
    return EXIT_OK;
}

static int audit_verify(cli *c, int argc, char **argv)
{
    const char *cp_file = NULL;
    static const struct option opts[] = {{"checkpoint", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'c')
            cp_file = optarg;
        else
            return EXIT_USAGE;
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "audit verify takes no arguments (see ckstore audit --help)");
    ck_audit_checkpoint cp;
    if (cp_file != NULL) {
        int r = read_checkpoint(&cp, cp_file);
        if (r != EXIT_OK)
            return r;
    }

    ck_store *st = NULL;
    int code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    warn_recovered(st);
    ck_audit_verify_result res = CK_AUDIT_VERIFY_INIT;
    int rc = ck_audit_verify(&res, st, cp_file != NULL ? &cp : NULL);
    if (rc == CK_EINTEGRITY) {
        if (c->format == FORMAT_JSON)
            cli_print_json(json_pack("{s:b, s:s, s:s, s:I, s:I}", "ok", 0, "problem",
                                     problem_name(res.problem), "segment", res.segment, "offset",
                                     (json_int_t)res.offset, "seq", (json_int_t)res.seq));
        code = cli_fail(EXIT_INTEGRITY, "audit log integrity failure: %s", ck_errmsg(st));
        ck_close(st);
        return code;
    }
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "cannot verify the audit log");
        ck_close(st);
        return code;
    }
    if (res.torn_bytes > 0)
        fprintf(stderr,
                "ckstore: warning: the audit log ends in an incomplete entry (%" PRIu64
                " bytes): a write in progress, or a crash not yet repaired\n",
                res.torn_bytes);
    char t[32], h[2 * CK_AUDIT_HASH_BYTES + 1];
    format_time(t, res.head_time_ms);
    cli_hex(h, res.head_hash, sizeof res.head_hash);
    ck_close(st);
    if (c->format == FORMAT_TEXT) {
        printf("ok: %" PRIu64 " entries in %u segment(s); head #%" PRIu64 " %s (%s)\n", res.entries,
               res.segments, res.head_seq, h, t);
        if (cp_file != NULL)
            printf("the log extends checkpoint #%" PRIu64 "\n", cp.seq);
        return EXIT_OK;
    }
    json_t *o = json_pack("{s:b, s:I, s:i, s:{s:I, s:s, s:s}}", "ok", 1, "entries",
                          (json_int_t)res.entries, "segments", (int)res.segments, "head", "seq",
                          (json_int_t)res.head_seq, "hash", h, "time", t);
    if (o != NULL && cp_file != NULL)
        json_object_set_new(o, "checkpoint",
                            json_pack("{s:I, s:o}", "seq", (json_int_t)cp.seq, "public_key",
                                      hex_json(cp.public_key, sizeof cp.public_key)));
    if (o != NULL && res.torn_bytes > 0)
        json_object_set_new(o, "torn_bytes", json_integer((json_int_t)res.torn_bytes));
    if (o != NULL && res.recovered_bytes > 0)
        json_object_set_new(o, "recovered_bytes", json_integer((json_int_t)res.recovered_bytes));
    return cli_print_json(o);
}

/* ------------------------------------------------------------------------ */
/* audit checkpoint                                                         */
/* ------------------------------------------------------------------------ */

static int audit_checkpoint(cli *c, int argc, char **argv)
{
    const char *key = NULL;
    static const struct option opts[] = {{"signing-key", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'k')
            key = optarg;
        else
            return EXIT_USAGE;
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE,
                        "audit checkpoint takes no arguments (see ckstore audit --help)");
    ck_store *st = NULL;
    int code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    warn_recovered(st);
    ck_audit_checkpoint cp;
    int rc = ck_audit_checkpoint_make(&cp, st, key);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "cannot make a checkpoint");
        ck_close(st);
        return code;
    }
    ck_close(st);
    char t[32];
    format_time(t, cp.time_ms);
    /* Always JSON: it is the artefact to keep. */
    return cli_print_json(json_pack("{s:I, s:o, s:s, s:I, s:o, s:o, s:o}", "seq",
                                    (json_int_t)cp.seq, "hash", hex_json(cp.hash, sizeof cp.hash),
                                    "time", t, "time_ms", (json_int_t)cp.time_ms, "store_id",
                                    hex_json(cp.store_id, sizeof cp.store_id), "public_key",
                                    hex_json(cp.public_key, sizeof cp.public_key), "signature",
                                    hex_json(cp.signature, sizeof cp.signature)));
}

int cmd_audit(cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "audit needs a subcommand: log, report, verify or checkpoint "
                                    "(see ckstore audit --help)");
    const char *sub = argv[1];
    /* The subcommand's options start after its name. */
    optind = 0;
    if (strcmp(sub, "log") == 0)
        return audit_log(c, argc - 1, argv + 1);
    if (strcmp(sub, "verify") == 0)
        return audit_verify(c, argc - 1, argv + 1);
    if (strcmp(sub, "checkpoint") == 0)
        return audit_checkpoint(c, argc - 1, argv + 1);
    if (strcmp(sub, "report") == 0)
        return audit_report(c, argc - 1, argv + 1);
    return cli_fail(EXIT_USAGE, "unknown audit subcommand '%s' (see ckstore audit --help)", sub);
}
