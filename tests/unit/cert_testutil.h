/* cert_testutil.h — a throw-away PKI for TLS tests, made with the OpenSSL API
 * (ECDSA P-256) in a fresh mkdtemp directory: a CA, a server certificate for
 * "sip.test" and 127.0.0.1 signed by it (and a renewed one for reload tests),
 * a client certificate signed by it and a self-signed "stranger". Compiled
 * into the test_harness library (see CMakeLists.txt), so any unit test may
 * use it. */
#ifndef CASCADE_TESTS_CERT_TESTUTIL_H
#define CASCADE_TESTS_CERT_TESTUTIL_H

#include <stdbool.h>

struct test_pki {
    char dir[64];
    char ca[128];                            /* CA certificate (PEM) */
    char server_cert[128], server_key[128];  /* CN sip.test; DNS:sip.test, IP:127.0.0.1, IP:::1 */
    char server2_cert[128], server2_key[128];/* CN "sip.test renewed", same names */
    char client_cert[128], client_key[128];  /* CN alice.client, signed by the CA */
    char stranger_cert[128], stranger_key[128]; /* CN stranger, self-signed */
};

/* Makes the directory and every file: 0, or -1 (with a line on stderr). */
int test_pki_make(struct test_pki *p);
/* Removes the files and the directory. */
void test_pki_remove(const struct test_pki *p);

#endif
