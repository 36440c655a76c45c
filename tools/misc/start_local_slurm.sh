#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/test_slurm.py and for trying tools/slurm_train.sh.
#
# Usage: bash tools/misc/start_local_slurm.sh          install if needed, configure, start; print the partition
#        bash tools/misc/start_local_slurm.sh --stop   stop slurmd, slurmctld and munged
#
# Needs root and, when the packages are missing, apt-get (Debian/Ubuntu: slurmctld slurmd slurm-client munge).
# Runs the daemons directly (no systemd). Safe to run again: a running cluster with the same configuration is left
# as it is. Progress goes to stderr; the only line on stdout is the partition name, so PARTITION=$(bash ...) works.
# Files: /etc/slurm/slurm.conf, state and spool under /var/spool/slurm{ctld,d}, logs under /var/log/slurm.
set -euo pipefail

PARTITION=debug
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
LOG_DIR=/var/log/slurm
WAIT_S=${SLURM_START_TIMEOUT:-60}

log() { echo "start_local_slurm: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
    local name=$1 pidfile=$2 pid
    alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    die "$name (pid $pid) did not stop within 10 s"
}

stop_all() {
    stop_pidfile slurmd "$SLURMD_PID"
    stop_pidfile slurmctld "$CTLD_PID"
    stop_pidfile munged "$MUNGE_PID"
}

case "${1:-}" in
    '') ;;
    --stop)
        [ "$(id -u)" -eq 0 ] || die 'must run as root (the daemons run as root)'
        stop_all
        exit 0
        ;;
    -h | --help)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (use --stop or no argument)" ;;
esac

[ "$(id -u)" -eq 0 ] || die 'must run as root: it installs packages, writes /etc/slurm and starts daemons'

# --- packages ---------------------------------------------------------------------------------------------------------
missing=0
for cmd in slurmctld slurmd sinfo srun scontrol munged munge; do
    command -v "$cmd" >/dev/null 2>&1 || missing=1
done
if [ "$missing" -eq 1 ]; then
    command -v apt-get >/dev/null 2>&1 ||
        die 'Slurm is not installed and apt-get is not available: install slurmctld, slurmd, slurm-client and munge'
    apt_log=/tmp/start_local_slurm.apt.log
    log "installing slurmctld slurmd slurm-client munge with apt-get (output in $apt_log)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q update >"$apt_log" 2>&1 || die "apt-get update failed (no network or package mirror?), see $apt_log"
    # the packages' scripts try to start the services; without systemd that fails harmlessly, we start them below
    apt-get -q install -y --no-install-recommends slurmctld slurmd slurm-client munge >>"$apt_log" 2>&1 ||
        die "apt-get install slurmctld slurmd slurm-client munge failed, see $apt_log"
    for cmd in slurmctld slurmd sinfo srun scontrol munged munge; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after the installation"
    done
fi

# --- munge ------------------------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log 'creating /etc/munge/munge.key'
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! alive "$MUNGE_PID" && ! munge_works; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    log 'starting munged'
    runuser -u munge -- munged || die 'munged did not start (see /var/log/munge/munged.log)'
fi
munge_works || die 'munge does not work: a credential made here does not decode'

# --- slurm.conf -------------------------------------------------------------------------------------------------------
HOST=$(hostname -s)
# the daemons find each other by this name
getent hosts "$HOST" >/dev/null || die "the host name $HOST does not resolve: add it to /etc/hosts"
# "NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=.."
NODE_LINE=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') || die 'slurmd -C printed no NodeName line'
mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
MARKER="# Written by mimlab's tools/misc/start_local_slurm.sh"
cat >"$new_conf" <<EOF
$MARKER: a one-node cluster, daemons run as root, no accounting.
ClusterName=mimlab-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# a node that was down only for not answering comes back when slurmd answers again
ReturnToService=2
# seconds between SIGTERM and SIGKILL when a job is cancelled or hits its time limit: time to save a checkpoint
KillWait=30
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
$NODE_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    # a real cluster's configuration, or one written by hand: not ours to replace
    die "$CONF exists and was not written by this script; move it away to use a local one-node Slurm"
fi
if [ -f "$CONF" ] && cmp -s "$new_conf" "$CONF"; then
    changed=0
else
    changed=1
    install -m 644 "$new_conf" "$CONF"
    log "wrote $CONF"
fi

# --- daemons ----------------------------------------------------------------------------------------------------------
if [ "$changed" -eq 1 ]; then
    # a daemon started with another configuration would keep it: restart both
    stop_pidfile slurmd "$SLURMD_PID"
    stop_pidfile slurmctld "$CTLD_PID"
fi
if ! alive "$CTLD_PID"; then
    log 'starting slurmctld'
    slurmctld || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
fi
if ! alive "$SLURMD_PID"; then
    log 'starting slurmd'
    slurmd || die "slurmd did not start (see $LOG_DIR/slurmd.log)"
fi

state=''
for _ in $(seq $((WAIT_S * 2))); do
    state=$(sinfo -h -N -n "$HOST" -p "$PARTITION" -o '%t' 2>/dev/null | head -n1 || true)
    case "$state" in
        idle | mix | alloc) break ;;
        # left over from an earlier run of the daemons (e.g. killed mid-job); nothing here is really broken
        down* | drain* | drng*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle | mix | alloc) ;;
    *) die "node $HOST is '${state:-not listed}' after ${WAIT_S} s (see $LOG_DIR/slurmctld.log and slurmd.log)" ;;
esac
log "node $HOST is $state in partition $PARTITION"
echo "$PARTITION"
