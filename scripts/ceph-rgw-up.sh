#!/usr/bin/env bash
# Bring up a throw-away single-node Ceph (1 mon, 1 mgr, 1 OSD, 1 radosgw) whose
# S3 endpoint listens on 127.0.0.1 only. No systemd, no cephadm, no real disk,
# nothing written under /etc/ceph: everything lives under $CEPH_DIR.
#
# Usage:  CEPH_DIR=/tmp/ceph-rgw RGW_PORT=7480 OSD_STORE=bluestore ./ceph-rgw-up.sh
#   OSD_STORE=bluestore (default): BlueStore on a sparse file $CEPH_DIR/osd/0/block
#   OSD_STORE=memstore: objects kept in RAM (faster start, lost on stop)
#   WITH_MGR=0: no ceph-mgr (saves ~300 MiB RSS; S3 works, 'ceph -s' shows no pg stats)
#   MON_PORT_V2/MON_PORT_V1/RGW_PORT: change them to run a second cluster beside the first
# Prints S3 endpoint + credentials at the end and writes them to $CEPH_DIR/s3.env.
# Needs (Debian 12): apt-get install -y --no-install-recommends \
#     ceph-mon ceph-osd ceph-mgr radosgw ceph-common
# Tear down with ceph-rgw-down.sh (same CEPH_DIR).
set -euo pipefail

CEPH_DIR=${CEPH_DIR:-/tmp/ceph-rgw}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT_V2=${MON_PORT_V2:-3300}
MON_PORT_V1=${MON_PORT_V1:-6789}
OSD_STORE=${OSD_STORE:-bluestore}
OSD_SIZE=${OSD_SIZE:-20G}            # sparse; only what is written uses disk
WITH_MGR=${WITH_MGR:-1}
PRECREATE_POOLS=${PRECREATE_POOLS:-1}   # 0: ~6 s faster start, first bucket/put ~2.5 s slower
S3_ACCESS_KEY=${S3_ACCESS_KEY:-TESTACCESSKEY0000000}
S3_SECRET_KEY=${S3_SECRET_KEY:-testsecretkey0000000000000000000000000000}

for b in ceph-mon ceph-osd ceph-mgr radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
  command -v "$b" >/dev/null || { echo "ceph-rgw-up: $b missing; apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common curl" >&2; exit 1; }
done
if [ -e "$CEPH_DIR/ceph.conf" ]; then
  echo "ceph-rgw-up: $CEPH_DIR already holds a cluster; run ceph-rgw-down.sh first" >&2
  exit 1
fi
for port in "$MON_PORT_V2" "$MON_PORT_V1" "$RGW_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "ceph-rgw-up: 127.0.0.1:$port is already in use" >&2; exit 1
  fi
done
mkdir -p "$CEPH_DIR"/{mon/a,osd/0,mgr/x,rgw/a,log,run,crash}
on_fail() {   # stop whatever this script already started (by pid file), keep logs
  echo "ceph-rgw-up: FAILED; logs in $CEPH_DIR/log" >&2
  for pf in "$CEPH_DIR"/run/*.pid; do [ -s "$pf" ] && kill -KILL "$(cat "$pf")" 2>/dev/null; done
  return 0
}
die() { echo "ceph-rgw-up: $*" >&2; on_fail; exit 1; }
trap on_fail ERR
CONF="$CEPH_DIR/ceph.conf"
export CEPH_CONF="$CONF"
FSID=$(cat /proc/sys/kernel/random/uuid)

# bytes of OSD_SIZE (accepts G/M suffix)
case "$OSD_SIZE" in
  *G) OSD_BYTES=$(( ${OSD_SIZE%G} * 1024 * 1024 * 1024 ));;
  *M) OSD_BYTES=$(( ${OSD_SIZE%M} * 1024 * 1024 ));;
  *)  OSD_BYTES=$OSD_SIZE;;
esac

cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:$MON_PORT_V2,v1:127.0.0.1:$MON_PORT_V1]
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
keyring = $CEPH_DIR/keyring
log_file = $CEPH_DIR/log/\$name.log
admin_socket = $CEPH_DIR/run/\$name.asok
pid_file = $CEPH_DIR/run/\$name.pid
run_dir = $CEPH_DIR/run
crash_dir = $CEPH_DIR/crash
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_max_pg_per_osd = 1000
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
mgr_initial_modules =

[mon]
mon_data = $CEPH_DIR/mon/\$id

[mgr]
mgr_data = $CEPH_DIR/mgr/\$id

[osd]
osd_data = $CEPH_DIR/osd/\$id
osd_objectstore = $OSD_STORE
osd_memory_target = 1073741824
bluestore_block_create = true
bluestore_block_size = $OSD_BYTES
bluestore_fsck_on_mkfs = false
memstore_device_bytes = $OSD_BYTES
osd_max_object_size = 134217728

[client.rgw.a]
rgw_data = $CEPH_DIR/rgw/a
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw_dns_name = 127.0.0.1
EOF

# One keyring with every entity; ceph-mon --mkfs imports all of them (keys + caps).
KR="$CEPH_DIR/keyring"
ceph-authtool --create-keyring "$KR" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$KR" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$KR" --gen-key -n mgr.x \
  --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$KR" --gen-key -n osd.0 \
  --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
ceph-authtool "$KR" --gen-key -n client.rgw.a \
  --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
chmod 600 "$KR"

# --- monitor
monmaptool --create --fsid "$FSID" \
  --addv a "[v2:127.0.0.1:$MON_PORT_V2,v1:127.0.0.1:$MON_PORT_V1]" "$CEPH_DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$KR"
ceph-mon -c "$CONF" -i a            # forks into the background, pid in run/mon.a.pid
ceph -c "$CONF" --connect-timeout 30 mon stat >/dev/null

# --- manager (optional: S3 works without it; then 'ceph -s' shows no pool/usage stats)
if [ "$WITH_MGR" = 1 ]; then
  ceph-mgr -c "$CONF" -i x
fi

# --- OSD
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(ceph -c "$CONF" osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || die "unexpected osd id $OSD_ID"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$CEPH_DIR/log/osd-mkfs.out" 2>&1
ceph-osd -c "$CONF" -i 0
for i in $(seq 1 120); do
  if ceph -c "$CONF" osd dump 2>/dev/null | grep -q '^osd.0 up'; then break; fi
  sleep 0.5
done
ceph -c "$CONF" osd dump | grep -q '^osd.0 up' || die "osd.0 did not come up"

# --- bucket pools up front, so the tests' first CreateBucket/PutObject do not pay
# ~2.5 s each for pool creation (radosgw would create them lazily otherwise)
if [ "$PRECREATE_POOLS" = 1 ]; then
  for pool in default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    ceph -c "$CONF" osd pool create "$pool" 8 8 >/dev/null 2>&1
    ceph -c "$CONF" osd pool application enable "$pool" rgw >/dev/null 2>&1
  done
fi

# --- radosgw (creates its remaining pools on first start)
radosgw -c "$CONF" -n client.rgw.a
ok=0
for i in $(seq 1 120); do
  # anonymous GET / answers 200 with a ListAllMyBucketsResult once radosgw serves
  if curl -s "http://127.0.0.1:$RGW_PORT/" 2>/dev/null | grep -q ListAllMyBucketsResult; then ok=1; break; fi
  sleep 0.5
done
[ $ok = 1 ] || die "radosgw did not answer on 127.0.0.1:$RGW_PORT"
kill -0 "$(cat "$CEPH_DIR/run/client.rgw.a.pid")" || die "radosgw exited"


# --- S3 user
radosgw-admin -c "$CONF" user create --uid=test --display-name="Test User" \
  --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >/dev/null

cat > "$CEPH_DIR/s3.env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=$S3_ACCESS_KEY
S3_SECRET_ACCESS_KEY=$S3_SECRET_KEY
S3_FORCE_PATH_STYLE=true
EOF
echo "ceph-rgw-up: S3 endpoint ready"
cat "$CEPH_DIR/s3.env"
