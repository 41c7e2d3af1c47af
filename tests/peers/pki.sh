# pki.sh — a throw-away PKI for peer tests, made with the openssl CLI (sourced).
#
# make_test_pki DIR writes, all ECDSA P-256, valid for two days:
#   DIR/ca.pem (+ ca.key)             a test CA
#   DIR/server.pem, DIR/server.key    signed by the CA for "localhost", 127.0.0.1 and ::1
#   DIR/client.pem, DIR/client.key    a client certificate (CN test-client) signed by the CA
#   DIR/stranger.pem, DIR/stranger.key  self-signed (CN stranger), trusted by nobody
# issue_server_cert DIR NAME CN then signs another server certificate with that CA
# (DIR/NAME.pem, DIR/NAME.key, same names as server.pem, a new serial), e.g. to
# replace the files a running server reads and reload them.
# Returns non-zero (with openssl's words on stderr) when a step fails.

# _pki_leaf DIR NAME CN EXTENSIONS: a key and a CA-signed certificate.
_pki_leaf() {
    local d=$1 name=$2 cn=$3 ext=$4
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
        -keyout "$d/$name.key" -out "$d/$name.csr" 2>"$d/$name.err" &&
        printf '[ext]\n%s\n' "$ext" >"$d/$name.ext" &&
        openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
            -sha256 -extfile "$d/$name.ext" -extensions ext -out "$d/$name.pem" 2>>"$d/$name.err" ||
        { cat "$d/$name.err" >&2; return 1; }
    rm -f "$d/$name.csr" "$d/$name.ext" "$d/$name.err"
}

# _pki_server_ext: the extensions of a server certificate for this machine's loopback names.
_pki_server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'

issue_server_cert() {
    _pki_leaf "$1" "$2" "$3" "$_pki_server_ext"
}

make_test_pki() {
    local d=$1
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -sha256 \
        -subj "/CN=cascade test CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>"$d/ca.err" || { cat "$d/ca.err" >&2; return 1; }
    rm -f "$d/ca.err"
    _pki_leaf "$d" server localhost "$_pki_server_ext" || return 1
    _pki_leaf "$d" client test-client "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth" || return 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -sha256 -subj "/CN=stranger" \
        -keyout "$d/stranger.key" -out "$d/stranger.pem" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -addext "extendedKeyUsage=serverAuth,clientAuth" 2>"$d/stranger.err" ||
        { cat "$d/stranger.err" >&2; return 1; }
    rm -f "$d/stranger.err"
}
