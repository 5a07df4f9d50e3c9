#!/usr/bin/env bash
# Writes the example cluster's volume into etcd, once (docs/cluster.md, "A cluster knows
# itself"): the geometry and the settings every node serves with. Run it on one node,
# with that node's config for the etcd endpoints and certificates:
#
#   deploy/cluster/init.sh /etc/leasehold/cluster-n1.conf
#
# Moving a stopped single node's volume into the cluster instead: add
# --import /var/lib/leasehold (its data directory; it no longer serves alone afterwards).
set -euo pipefail
config=${1:?usage: deploy/cluster/init.sh CONFIG}
exec /opt/leasehold/bin/leaseholdd cluster init --config "$config" \
    --block-size 4096 --block-count 268435456 \
    --min-ttl 1s --default-ttl 15s --max-ttl 300s \
    --max-short-term-pin 30s --recall-timeout 10s --release-delay 5s --max-wait 60s \
    --event-history 10000 \
    --admin admin --target nvme-target-1
