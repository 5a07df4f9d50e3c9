#!/usr/bin/env bash
# Issues certificates for a small cluster with openssl: a CA, the server certificate
# (with the server's DNS names and IP addresses) and one client certificate per
# identity. The common name of a client certificate is its Leasehold identity; give
# identities roles with `admin = ...` / `target = ...` in leaseholdd.conf.
#
#   deploy/issue-certificates.sh OUT_DIR SERVER_NAMES CLIENTS...
#   deploy/issue-certificates.sh /etc/leasehold/tls "lease1.example.com,10.0.0.5" admin gpu-host-1 nvme-target-1
#
# Writes OUT_DIR/ca.pem, ca-key.pem, server.pem, server-key.pem and
# OUT_DIR/clients/NAME.pem, NAME-key.pem. Keys are mode 0600. Existing CA files are
# reused, so the script can be run again to add clients.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,13p' "$0"
    exit 2
fi
out=$1
names=$2
shift 2
days=${LEASEHOLD_CERT_DAYS:-365}
umask 077
mkdir -p "$out/clients"

if [ ! -f "$out/ca.pem" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca-key.pem"
    openssl req -x509 -new -key "$out/ca-key.pem" -sha256 -days 3650 -subj "/CN=Leasehold CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$out/ca.pem"
fi

san=""
IFS=',' read -ra parts <<<"$names"
for name in "${parts[@]}"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
done
san=${san%,}

issue() { # CN KEY CERT EXTENSIONS
    openssl ecparam -name prime256v1 -genkey -noout -out "$2"
    openssl req -new -key "$2" -subj "/CN=$1" -out "$3.csr"
    openssl x509 -req -in "$3.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" -CAcreateserial -sha256 -days "$days" \
        -extfile <(printf '%s\n' "$4") -out "$3"
    rm -f "$3.csr"
}

issue leaseholdd "$out/server-key.pem" "$out/server.pem" \
    "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"
for client in "$@"; do
    issue "$client" "$out/clients/$client-key.pem" "$out/clients/$client.pem" \
        "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
done
chmod 0644 "$out"/*.pem "$out"/clients/*.pem
chmod 0600 "$out"/*-key.pem "$out"/clients/*-key.pem
echo "CA: $out/ca.pem; server: $out/server.pem ($san); clients: $*"
