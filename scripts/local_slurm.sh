#!/usr/bin/env bash
# A whole single-node SLURM cluster on this machine, for trying `reproduce.py run --executor
# slurm` and for the tests marked `slurm` (docs/SLURM.md, "Trying it on one machine").
#
#   scripts/local_slurm.sh install          apt-get install slurm-wlm munge (root; Debian/Ubuntu)
#   scripts/local_slurm.sh start [DIR]      start munged, slurmctld and slurmd with their own
#                                           configuration, sockets, ports and logs under DIR
#                                           (default /tmp/metaplastic-slurm); prints the line
#                                           `export SLURM_CONF=DIR/slurm.conf` that clients need
#   scripts/local_slurm.sh stop [DIR]       stop the three daemons by the process ids in DIR
#   scripts/local_slurm.sh status [DIR]     sinfo through the cluster
#
# Nothing is written outside DIR: no /etc/slurm, no system munge socket, no accounting
# database, no cgroups (proctrack/linuxproc, task/none). Runs as root (slurmd starts jobs as
# their users); the daemons run as root too, which is fine on a throwaway test machine only.
set -euo pipefail

DIR=${2:-/tmp/metaplastic-slurm}
CTLD_PORT=${METAPLASTIC_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${METAPLASTIC_SLURMD_PORT:-16818}
NODE=$(hostname -s)

die() { echo "local_slurm.sh: $*" >&2; exit 2; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
      && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    echo "slurm-wlm and munge are installed"; return
  fi
  [ "$(id -u)" = 0 ] || die "installing needs root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null || die "no apt-get here: install slurm-wlm and munge yourself"
  apt-get update -q >/dev/null || true   # a fresh image has empty package lists
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
  echo "installed slurm-wlm and munge"
}

write_config() {
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$DIR"/{state,spool,munge}
  chmod 755 "$DIR/munge"      # clients of other users reach the socket; the key stays 0400
  [ -s "$DIR/munge/munge.key" ] || { head -c 1024 /dev/urandom > "$DIR/munge/munge.key"; }
  chmod 400 "$DIR/munge/munge.key"
  cat > "$DIR/slurm.conf" <<EOF
# written by scripts/local_slurm.sh: a single-node test cluster
ClusterName=metaplastic-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  command -v slurmctld >/dev/null || die "slurm-wlm is not installed (scripts/local_slurm.sh install)"
  [ "$(id -u)" = 0 ] || die "the local cluster runs as root"
  if pid_alive "$DIR/slurmctld.pid"; then die "a cluster already runs in $DIR (stop it first)"; fi
  write_config
  export SLURM_CONF="$DIR/slurm.conf"
  trap 'echo "local_slurm.sh: start failed; stopping what started" >&2; stop' ERR
  munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
  slurmctld -i -f "$SLURM_CONF"   # -i: ignore any state of an earlier run in DIR
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 1 60); do
    if sinfo -h -o "%T" 2>/dev/null | grep -qx "idle"; then
      trap - ERR
      echo "export SLURM_CONF=$SLURM_CONF"; return
    fi
    sleep 0.5
  done
  trap - ERR
  echo "local_slurm.sh: the node did not become idle; logs in $DIR:" >&2
  tail -n 5 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  stop
  exit 1
}

stop() {
  local name pidfile pid
  if pid_alive "$DIR/slurmctld.pid"; then   # jobs first: their steps would outlive slurmd
    SLURM_CONF="$DIR/slurm.conf" scancel --user "$(id -un)" 2>/dev/null || true
  fi
  for name in slurmd slurmctld munge/munged; do
    pidfile="$DIR/$name.pid"
    if pid_alive "$pidfile"; then
      pid=$(cat "$pidfile")
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  echo "stopped the cluster of $DIR"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$DIR/slurm.conf" sinfo ;;
  *) die "usage: scripts/local_slurm.sh install|start|stop|status [DIR]" ;;
esac
