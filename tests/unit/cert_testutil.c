/* cert_testutil.c — see cert_testutil.h. Every certificate is valid from an
 * hour ago for a day, with a fresh P-256 key and SHA-256 signature. */
#include "cert_testutil.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What one certificate says; issuer NULL: self-signed. */
struct cert_spec {
    const char *cn;
    const char *san;             /* "DNS:a,IP:1.2.3.4" or NULL */
    const char *eku;             /* "serverAuth" / "clientAuth" or NULL */
    bool ca;
};

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!e) return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

/* A certificate for key, signed by issuer_key (issuer NULL: by key itself). */
static X509 *make_cert(const struct cert_spec *sp, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    static long serial = 1;
    X509 *x = X509_new();
    if (!x) return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)sp->cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509 *signer = issuer ? issuer : x;
    int bad = add_ext(x, signer, NID_basic_constraints, sp->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    bad |= add_ext(x, signer, NID_key_usage, sp->ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    bad |= add_ext(x, signer, NID_subject_key_identifier, "hash");
    if (issuer) bad |= add_ext(x, signer, NID_authority_key_identifier, "keyid");
    if (sp->san) bad |= add_ext(x, signer, NID_subject_alt_name, sp->san);
    if (sp->eku) bad |= add_ext(x, signer, NID_ext_key_usage, sp->eku);
    if (bad || !X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *cert_path, X509 *x, const char *key_path, EVP_PKEY *k)
{
    FILE *f = fopen(cert_path, "w");
    if (!f) return -1;
    int ok = PEM_write_X509(f, x);
    fclose(f);
    if (!ok || !key_path) return ok ? 0 : -1;
    f = fopen(key_path, "w");
    if (!f) return -1;
    ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    return ok ? 0 : -1;
}

/* A leaf with a fresh key, signed by ca (NULL: self-signed), written out. */
static int make_leaf(const struct cert_spec *sp, X509 *ca, EVP_PKEY *ca_key, const char *cert_path,
                     const char *key_path)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? make_cert(sp, k, ca, ca_key) : NULL;
    int rc = x ? write_pem(cert_path, x, key_path, k) : -1;
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

#define PATH(field, file) snprintf(p->field, sizeof(p->field), "%s/" file, p->dir)

int test_pki_make(struct test_pki *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/cascade-pki.XXXXXX");
    if (!mkdtemp(p->dir)) {
        perror("mkdtemp");
        return -1;
    }
    PATH(ca, "ca.pem");
    PATH(server_cert, "server.pem");
    PATH(server_key, "server.key");
    PATH(server2_cert, "server2.pem");
    PATH(server2_key, "server2.key");
    PATH(client_cert, "client.pem");
    PATH(client_key, "client.key");
    PATH(stranger_cert, "stranger.pem");
    PATH(stranger_key, "stranger.key");

    static const struct cert_spec ca_spec = {"cascade test CA", NULL, NULL, true};
    static const struct cert_spec server = {"sip.test", "DNS:sip.test,IP:127.0.0.1,IP:::1", "serverAuth", false};
    static const struct cert_spec server2 = {"sip.test renewed", "DNS:sip.test,IP:127.0.0.1,IP:::1", "serverAuth",
                                             false};
    static const struct cert_spec client = {"alice.client", "DNS:alice.client", "clientAuth", false};
    static const struct cert_spec stranger = {"stranger", "DNS:stranger", "clientAuth,serverAuth", false};

    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    X509 *ca = ca_key ? make_cert(&ca_spec, ca_key, NULL, NULL) : NULL;
    int rc = -1;
    if (ca && !write_pem(p->ca, ca, NULL, NULL) &&
        !make_leaf(&server, ca, ca_key, p->server_cert, p->server_key) &&
        !make_leaf(&server2, ca, ca_key, p->server2_cert, p->server2_key) &&
        !make_leaf(&client, ca, ca_key, p->client_cert, p->client_key) &&
        !make_leaf(&stranger, NULL, NULL, p->stranger_cert, p->stranger_key))
        rc = 0;
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    if (rc) fprintf(stderr, "test_pki_make: cannot make the certificates in %s\n", p->dir);
    return rc;
}

void test_pki_remove(const struct test_pki *p)
{
    const char *files[] = {p->ca,          p->server_cert, p->server_key,    p->server2_cert, p->server2_key,
                           p->client_cert, p->client_key,  p->stranger_cert, p->stranger_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i][0]) unlink(files[i]);
    if (p->dir[0]) rmdir(p->dir);
}
