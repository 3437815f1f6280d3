#!/usr/bin/env bash
# Stop the daemons started by ci/slurm/start_cluster.sh, and only those (by their PID files).
# Jobs still queued are cancelled first. Packages and /etc/slurm/slurm.conf are left in place.
set -uo pipefail

STATE=${SLURM_CI_STATE:-/var/tmp/dln-slurm-ci}
log() { echo "[stop_cluster] $*" >&2; }

if [ -f "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
  scancel --user="$(id -un)" 2>/dev/null || true
fi
for d in slurmd slurmctld munged; do   # reverse start order
  f="$STATE/$d.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$d ($pid) ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null
    fi
    log "stopped $d ($pid)"
  fi
  rm -f "$f"
done
exit 0
