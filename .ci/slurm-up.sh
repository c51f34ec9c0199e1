#!/usr/bin/env bash
# Start a real single-node SLURM cluster on loopback, for CI and for tests marked `slurm`.
#
#   sudo bash .ci/slurm-up.sh          # install (first time), configure, start, verify
#   bash .ci/slurm-down.sh             # stop the daemons again
#
# What it gives you: partition `debug` with one node `localhost` (127.0.0.1), CPUs and memory
# below what this machine really has, and 2 fake GPUs (gres) so that `--gpus=N` jobs schedule.
# No accounting (no slurmdbd, no sacct): Snakemake must poll with `slurm-status-command: squeue`,
# and MinJobAge keeps finished jobs visible to squeue for an hour.
#
# Tested with Debian 12's slurm 22.05.8 and munge 0.5.15, as root, in a gVisor container
# (shared/reference/snakemake-and-slurm.md §3). Safe to run again: running daemons are detected
# and kept when the configuration did not change, restarted when it did.
#
# Environment knobs:
#   IG_SLURM_DIR        scratch dir for config, state, spool, logs  (default /var/tmp/ig-slurm)
#   IG_SLURM_GPUS       number of fake GPUs                          (default 2)
#   IG_SLURM_TIMEOUT    seconds to wait for the node to become idle  (default 60)
set -euo pipefail

D=${IG_SLURM_DIR:-/var/tmp/ig-slurm}
NODE=localhost            # must match `slurmd -N`: the container's hostname is not "localhost"
PARTITION=debug
GPUS=${IG_SLURM_GPUS:-2}
TIMEOUT=${IG_SLURM_TIMEOUT:-60}
# The jobstep plugin strips SLURM_CONF inside jobs, so inner `srun` only finds the default path.
# Everything here therefore goes through /etc/slurm, never through SLURM_CONF.
ETC=/etc/slurm
unset SLURM_CONF

T0=$SECONDS
log() { printf '[slurm-up %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { log "ERROR: $*"; diagnostics; exit 1; }

diagnostics() {
    # Everything one needs to see why the cluster did not come up, on stderr.
    {
        echo "=============== SLURM diagnostics ==============="
        for f in "$D/log/slurmctld.log" "$D/log/slurmd.log" /var/log/munge/munged.log; do
            [[ -f $f ]] && { echo "--- tail -n 40 $f"; tail -n 40 "$f"; }
        done
        if command -v sinfo >/dev/null; then
            echo "--- sinfo -N -l";  timeout 10 sinfo -N -l 2>&1 || true
            echo "--- sinfo -R";     timeout 10 sinfo -R 2>&1 || true
            echo "--- scontrol show node $NODE"; timeout 10 scontrol show node "$NODE" 2>&1 || true
        fi
        echo "--- processes"; ps -eo pid,user,comm,args | grep -E '[s]lurm|[m]unge' || true
        echo "================================================="
    } >&2
}
# Any unexpected failure (set -e) also prints the daemon logs.
trap 'rc=$?; if [[ $rc -ne 0 ]]; then log "failed (rc=$rc) at line $LINENO"; diagnostics; fi' ERR

[[ $(id -u) -eq 0 ]] || { echo "slurm-up.sh must run as root (it installs packages and starts daemons)" >&2; exit 1; }

# Two callers (CI plus an engineer, two test sessions) must not configure the cluster at once.
mkdir -p "$D"
# Daemons are started with `9>&-`: a daemon that inherited fd 9 would hold the lock forever.
exec 9>"$D/.slurm-up.lock"
flock -w 300 9 || die "another slurm-up.sh holds $D/.slurm-up.lock for more than 300 s"

# ---------------------------------------------------------------------------------- install
need_install=0
for b in munged slurmctld slurmd sinfo sbatch srun scontrol; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] || need_install=1
done
if [[ $need_install -eq 1 ]]; then
    log "installing munge + slurm from Debian (apt-get)"
    t=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    # Wait for other apt users instead of failing on the dpkg lock (shared machines).
    apt_opts=(-q -y -o Dpkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    # Package scripts chatter on stderr (no systemd, policy-rc.d): keep it in a log, show it on failure.
    if ! { apt-get "${apt_opts[@]}" update &&
           apt-get "${apt_opts[@]}" install --no-install-recommends \
               munge slurmctld slurmd slurm-client; } >"$D/apt.log" 2>&1; then
        tail -n 30 "$D/apt.log" >&2
        die "apt-get install failed (full log: $D/apt.log)"
    fi
    log "installed in $((SECONDS - t)) s: $(dpkg-query -W -f='${Package} ${Version}  ' slurmctld munge)"
else
    log "munge + slurm already installed"
fi

# ---------------------------------------------------------------------------------- munge
# munged authenticates every RPC between the client tools and the daemons.
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --force
    else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; fi
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
# No systemd here: create the runtime dirs the unit file would have made.
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge   # clients (root) must reach the socket

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    log "starting munged"
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock   # stale after a crash
    runuser -u munge -- /usr/sbin/munged 9>&-
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || die "munged does not answer (munge -n | unmunge)"
fi

# ---------------------------------------------------------------------------------- config
mkdir -p "$D"/{state,spool,log,run,dev} "$ETC"

# Fake GPUs: slurmd 22.05 drops gres without File= ("Removing file-less GPU"), then drains the
# node. Character devices identical to /dev/null (major 1, minor 3) are enough.
for i in $(seq 0 $((GPUS - 1))); do
    [[ -c $D/dev/fakegpu$i ]] || { rm -f "$D/dev/fakegpu$i"; mknod "$D/dev/fakegpu$i" c 1 3; }
done

# Advertise at most what the machine has: a node that claims more CPUs or memory than slurmd
# detects is drained ("Low RealMemory"/"Low CPUs"). slurmd -C prints what slurmd sees.
detected=$(/usr/sbin/slurmd -C 2>/dev/null | head -n 1 || true)
det_cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$detected")
det_mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
cpus=$(nproc)
[[ -n $det_cpus && $det_cpus -lt $cpus ]] && cpus=$det_cpus
mem_total=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
[[ -n $det_mem && $det_mem -lt $mem_total ]] && mem_total=$det_mem
# Keep a quarter back for the OS, the daemons and Snakemake's main process (the node is shared).
mem=$(( mem_total * 3 / 4 ))
gpu_last=$((GPUS - 1))

new_conf=$(cat <<EOF
# Generated by .ci/slurm-up.sh: single-node loopback cluster for CI. Do not edit by hand.
ClusterName=igci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
# No cgroups in a gVisor container: track processes by /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: no accounting, no sacct.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A node that went down (e.g. slurmd restarted) rejoins by itself.
ReturnToService=2
# Finished jobs stay visible to squeue for an hour: Snakemake's squeue status polling needs >= 120 s.
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
new_gres="NodeName=$NODE Name=gpu File=$D/dev/fakegpu[0-$gpu_last]"
[[ $GPUS -eq 1 ]] && new_gres="NodeName=$NODE Name=gpu File=$D/dev/fakegpu0"

changed=0
if [[ "$(cat "$D/slurm.conf" 2>/dev/null)" != "$new_conf" ]]; then
    printf '%s\n' "$new_conf" >"$D/slurm.conf"; changed=1
fi
if [[ "$(cat "$D/gres.conf" 2>/dev/null)" != "$new_gres" ]]; then
    printf '%s\n' "$new_gres" >"$D/gres.conf"; changed=1
fi
for f in slurm.conf gres.conf; do
    # Keep a foreign config once, rather than silently destroying it.
    if [[ -e $ETC/$f && ! -L $ETC/$f ]]; then mv "$ETC/$f" "$ETC/$f.before-ig"; fi
    if [[ "$(readlink "$ETC/$f" 2>/dev/null)" != "$D/$f" ]]; then ln -sfn "$D/$f" "$ETC/$f"; changed=1; fi
done
log "config: $ETC/slurm.conf -> $D/slurm.conf (CPUs=$cpus RealMemory=${mem}MB gpus=$GPUS)"

# ---------------------------------------------------------------------------------- daemons
# A daemon counts as ours and running when its pid file names a live process of that name.
running() {  # running <name>
    local pid
    pid=$(cat "$D/run/$1.pid" 2>/dev/null) || return 1
    [[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]]
}
stop() {  # stop <name>
    local pid
    running "$1" || return 0
    pid=$(cat "$D/run/$1.pid")
    log "stopping $1 (pid $pid) to apply the new configuration"
    kill "$pid"
    for _ in $(seq 40); do [[ -d /proc/$pid ]] || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

if [[ $changed -eq 1 ]]; then
    stop slurmd
    stop slurmctld
fi

if running slurmctld; then
    log "slurmctld already running (pid $(cat "$D/run/slurmctld.pid"))"
else
    log "starting slurmctld"
    # -i: ignore unreadable state files from an earlier run instead of refusing to start.
    /usr/sbin/slurmctld -i 9>&- || die "slurmctld did not start"
fi
for _ in $(seq 40); do scontrol ping >/dev/null 2>&1 && break; sleep 0.25; done
scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer scontrol ping"

if running slurmd; then
    log "slurmd already running (pid $(cat "$D/run/slurmd.pid"))"
else
    log "starting slurmd -N $NODE"
    /usr/sbin/slurmd -N "$NODE" 9>&- || die "slurmd did not start"
fi

# ---------------------------------------------------------------------------------- wait idle
resumed=0
state=""
deadline=$((SECONDS + TIMEOUT))
while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true)
    case $state in
        idle | mixed | allocated | completing) break ;;
        drain* | down | fail*)
            # Drained by an earlier bad config, or down after a restart: resume once.
            if [[ $resumed -eq 0 ]]; then
                log "node is $state ($(sinfo -h -R -o '%E' 2>/dev/null | head -n 1)); resuming"
                scontrol update nodename="$NODE" state=resume || true
                resumed=1
            fi ;;
    esac
    sleep 0.5
done
case $state in
    idle | mixed | allocated | completing) log "node $NODE is $state" ;;
    *) die "node $NODE is '${state:-unknown}' after ${TIMEOUT}s (expected idle)" ;;
esac
gres=$(sinfo -h -N -n "$NODE" -o '%G' | head -n 1)
[[ $gres == *"gpu:$GPUS"* ]] || die "node gres is '$gres', expected gpu:$GPUS"

# ---------------------------------------------------------------------------------- verify
# A batch job with a job step proves munge, slurmctld, slurmd, and step launch all work.
t=$SECONDS
out="$D/log/verify-%j.out"
if ! jobid=$(timeout 120 sbatch --parsable --wait -p "$PARTITION" -n1 -c1 --mem=50 -t 2 \
        -J ig-slurm-verify -o "$out" --wrap 'srun -n1 true && echo step-ok'); then
    die "verification job failed (sbatch --wait --wrap 'srun -n1 true')"
fi
jobid=${jobid%%;*}
grep -q step-ok "$D/log/verify-$jobid.out" || die "verification job $jobid: no step-ok in output"
log "verification job $jobid ran sbatch+srun in $((SECONDS - t)) s"

log "SLURM is up: $(sinfo -h -o '%P %a %D %T %C %G' | head -n 1)  (total $((SECONDS - T0)) s)"
