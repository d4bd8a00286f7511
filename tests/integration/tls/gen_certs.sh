#!/bin/sh
# Makes the TLS tests' certificates in DIR with the openssl command (docs/tls.md):
#   ca.pem                 the test CA (trusted by the tests' clients and servers)
#   server.pem/key         localhost, 127.0.0.1 and ::1, signed by the CA
#   client.pem/key         CN=client, DNS:client.test and a SPIFFE URI, signed by the CA
#   expired.pem/key        like server, valid only in 2020
#   wronghost.pem/key      DNS:other.test only, signed by the CA
#   rogue-ca.pem, untrusted.pem/key, rogue-client.pem/key: a CA nobody trusts and
#                          a server and a client certificate it signed
# EC P-256 keys: quick to make, and what a mesh issues today.
set -eu
dir=${1:?usage: gen_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f done ] && exit 0

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }

ca() { # name subject
    key "$1"
    openssl req -x509 -new -key "$1.key" -subj "$2" -days 3650 -out "$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# leaf NAME CA SUBJECT SAN [openssl ca dates]
leaf() {
    key "$1"
    openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' \
        "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 825 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}

ca ca "/CN=arpc test CA"
ca rogue-ca "/CN=rogue CA"
leaf server ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client ca "/O=arpc tests/CN=client" "DNS:client.test,URI:spiffe://arpc.test/client"
leaf wronghost ca "/CN=other.test" "DNS:other.test"
leaf untrusted rogue-ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
leaf rogue-client rogue-ca "/CN=rogue client" "DNS:rogue.test"

# Expired: `openssl ca` is the one command of OpenSSL 3.0 that sets past dates.
key expired
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir -p ca-db
: >ca-db/index.txt
echo 01 >ca-db/serial
cat >ca-db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
x509_extensions = ext
[any]
commonName = supplied
[ext]
subjectAltName = DNS:localhost,IP:127.0.0.1
basicConstraints = CA:FALSE
CNF
openssl ca -batch -config ca-db/ca.cnf -in expired.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20201231000000Z -notext 2>/dev/null
touch done
