#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (for CI and for trying the SLURM profile).
#
# Needs root and a Debian/Ubuntu system; no systemd is needed. It
#   1. installs slurm-wlm and munge with apt-get if `slurmctld` is missing
#      ("policy-rc.d denied execution" during the install is expected: no service is started),
#   2. writes /etc/slurm/slurm.conf for one node (this machine, all its CPUs, ~90 % of its memory),
#   3. starts munged (as user munge), slurmctld and slurmd in the background and records their
#      PIDs under $SLURM_CI_STATE (ci/slurm/stop_cluster.sh stops exactly these),
#   4. waits until the node is idle (sinfo) and a trivial job runs (srun).
#
# The configuration has no accounting storage, so `sacct` does not work: run Snakemake with
# `--slurm-status-command squeue` (MinJobAge below keeps finished jobs visible to squeue).
# The configuration must stay at /etc/slurm/slurm.conf: the Snakemake SLURM plugin clears the
# SLURM_* variables (SLURM_CONF included) inside jobs.
set -euo pipefail

STATE=${SLURM_CI_STATE:-/var/tmp/dln-slurm-ci}
CONF=/etc/slurm/slurm.conf
NODE=${SLURM_CI_NODE:-cinode}
TIMEOUT=${SLURM_CI_TIMEOUT:-60}
t0=$(date +%s)

log() { echo "[start_cluster] $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs packages and starts daemons)"; exit 1
fi

alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

if alive slurmctld && alive slurmd && sinfo -h -o %T 2>/dev/null | grep -qx idle; then
  log "cluster already running (PIDs in $STATE)"; exit 0
fi

# --- 1. packages ------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
log "$(slurmctld -V)"

mkdir -p "$STATE"

# --- 2. munge ---------------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile /etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already answers; not starting another one"
else
  # -F: foreground, so that $! is the daemon's PID.
  runuser -u munge -- /usr/sbin/munged -F --force >"$STATE/munged.out" 2>&1 &
  echo $! >"$STATE/munged.pid"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || { log "munged did not start"; cat "$STATE/munged.out" >&2; exit 1; }
fi

# --- 3. slurm.conf ----------------------------------------------------------------------------
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
DEF_MEM=$((MEM_MB / CPUS))
install -d -m 0755 /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
cat >"$CONF" <<EOF
# Single-node test cluster written by ci/slurm/start_cluster.sh.
ClusterName=ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
# Jobs are tracked by process group (no cgroups needed): a cancelled job's processes that were
# re-parented to init are still killed (proctrack/linuxproc, which follows the process tree,
# lets them escape and run on).
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Without a default a job without --mem would be given the whole node's memory.
DefMemPerCPU=$DEF_MEM
SchedulerType=sched/backfill
ReturnToService=2
# No accounting storage: sacct does not work, finished jobs stay visible to squeue for
# MinJobAge seconds (must exceed 3x the plugin's first status-check delay).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
log "wrote $CONF: $CPUS CPUs, RealMemory=$MEM_MB MB, DefMemPerCPU=$DEF_MEM MB"

# --- 4. daemons -------------------------------------------------------------------------------
# -D: foreground, so that $! is the daemon's PID; -c: clean start (no state from earlier runs).
if ! alive slurmctld; then
  slurmctld -D -c -i >"$STATE/slurmctld.out" 2>&1 &
  echo $! >"$STATE/slurmctld.pid"
fi
if ! alive slurmd; then
  slurmd -D -N "$NODE" >"$STATE/slurmd.out" 2>&1 &
  echo $! >"$STATE/slurmd.pid"
fi

# --- 5. wait for an idle node -----------------------------------------------------------------
state=""
for _ in $(seq $((TIMEOUT * 2))); do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  for d in slurmctld slurmd; do
    alive "$d" || { log "$d exited:"; tail -20 "$STATE/$d.out" /var/log/slurm/$d.log >&2 || true; exit 1; }
  done
  sleep 0.5
done
if [ "$state" != idle ]; then
  log "node $NODE is '${state:-unknown}' after ${TIMEOUT}s"; sinfo -R >&2 || true
  tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  exit 1
fi
timeout 60 srun -N1 -n1 --mem=10 true || { log "a trivial srun job failed"; exit 1; }
log "cluster up in $(($(date +%s) - t0)) s: $(sinfo -h -o 'partition %P, %D node, %c CPUs, %m MB')"
