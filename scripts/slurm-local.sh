#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the tests and for trying `xltune sweep --launcher slurm`
# without a cluster: Debian's slurm-wlm and munge, started by hand (no systemd needed).
#
#   scripts/slurm-local.sh start    install (apt-get, once) and start munged, slurmctld, slurmd; wait until the node
#                                   takes jobs; print `sinfo`
#   scripts/slurm-local.sh stop     stop the three daemons started here
#   scripts/slurm-local.sh status   exit 0 when the cluster answers
#
# Needs root (apt-get, /etc/slurm, the daemons). One partition `local` with every CPU of this machine, no GPUs;
# jobs run as the user who submits them. Process tracking without cgroups (proctrack/linuxproc, task/none), so it
# also starts in containers. It writes /etc/slurm/slurm.conf only when that file is absent or was written by this
# script: a machine with its own Slurm is left alone. State and logs: $XLTUNE_SLURM_DIR (default /var/lib/xltune-slurm).
set -euo pipefail

DIR=${XLTUNE_SLURM_DIR:-/var/lib/xltune-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by xltune scripts/slurm-local.sh"

die() { echo "slurm-local: $*" >&2; exit 1; }

answers() { timeout 10 sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "installing slurm-wlm and munge needs root (apt-get); run as root or install them"
    echo "slurm-local: installing slurm-wlm and munge (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script: this machine has its own Slurm; use it"
    fi
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))  # MB, leave 10 % to the system
    mkdir -p /etc/slurm "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$CONF" <<EOF
$MARK
ClusterName=xltune-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job (preemption, time limit) waits cred_expire seconds before it starts again (Slurm's default: 120)
AuthInfo=cred_expire=30
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups needed (containers, CI): track processes by parentage, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# a cancelled job gets SIGTERM, then SIGKILL after KillWait seconds (Slurm's default is 30; short here for tests)
KillWait=2
MinJobAge=300
SlurmdTimeout=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if pid_alive /run/munge/munged.pid && munge -n </dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
            || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n </dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.2
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

start() {
    [[ $(id -u) -eq 0 ]] || die "starting Slurm's daemons needs root"
    install
    write_conf
    start_munge
    if ! pid_alive "$DIR/slurmctld.pid"; then
        slurmctld -c  # -c: a fresh cluster, no jobs left from an earlier start
    fi
    if ! pid_alive "$DIR/slurmd.pid"; then
        slurmd
    fi
    for _ in $(seq 150); do
        if answers; then
            scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
            sinfo
            return
        fi
        sleep 0.2
    done
    echo "slurm-local: the node did not come up; last lines of the logs:" >&2
    tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
}

stop_one() {  # pid file, name
    if pid_alive "$1"; then
        local pid
        pid=$(cat "$1")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

stop() {
    stop_one "$DIR/slurmd.pid"
    stop_one "$DIR/slurmctld.pid"
    stop_one /run/munge/munged.pid
    echo "slurm-local: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers && sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
