#!/usr/bin/env bash
# Tear down what ceph-rgw-up.sh started: stop each daemon by the pid in its own
# pid file under $CEPH_DIR/run (never by process name), then delete $CEPH_DIR.
# KEEP_CEPH_DIR=1 keeps the directory (logs) for inspection. STOP_SIGNAL=KILL skips the clean
# shutdown (seconds of waiting for radosgw) for a throw-away test cluster.
set -uo pipefail
CEPH_DIR=${CEPH_DIR:-/tmp/ceph-rgw}
[ -d "$CEPH_DIR" ] || exit 0
pids=()
for name in client.rgw.a osd.0 mgr.x mon.a; do
  pf="$CEPH_DIR/run/$name.pid"
  [ -s "$pf" ] || continue
  pid=$(cat "$pf")
  # only signal it if it is still the ceph daemon that wrote the pid file
  if grep -q -- "$CEPH_DIR/ceph.conf" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "-${STOP_SIGNAL:-TERM}" "$pid" 2>/dev/null && pids+=("$pid")
  fi
done
for i in $(seq 1 75); do          # up to 15 s for a clean exit
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.2
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
if [ "${KEEP_CEPH_DIR:-0}" != 1 ]; then rm -rf "$CEPH_DIR"; fi
echo "ceph-rgw-down: stopped"
