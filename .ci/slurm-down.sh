#!/usr/bin/env bash
# Stop the single-node loopback SLURM that .ci/slurm-up.sh started.
#
#   bash .ci/slurm-down.sh           # stop slurmd, slurmctld, munged (state and logs are kept)
#   bash .ci/slurm-down.sh --purge   # also delete the scratch dir (job state, logs) and the
#                                    # /etc/slurm symlinks, for a truly fresh start next time
#
# Only the daemons named by slurm-up.sh's pid files are stopped, never by process name, so
# another cluster on the same machine is left alone.
set -euo pipefail

D=${IG_SLURM_DIR:-/var/tmp/ig-slurm}
ETC=/etc/slurm
purge=0
[[ ${1:-} == --purge ]] && purge=1

log() { printf '[slurm-down] %s\n' "$*"; }

stop_pidfile() {  # stop_pidfile <name> <pidfile>
    local name=$1 pidfile=$2 pid
    pid=$(cat "$pidfile" 2>/dev/null) || { log "$name: no pid file ($pidfile), not running"; return 0; }
    if [[ -z $pid || "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]]; then
        log "$name: pid file is stale, not running"; rm -f "$pidfile"; return 0
    fi
    log "stopping $name (pid $pid)"
    kill "$pid"
    # slurmctld saves its state on SIGTERM; give it a few seconds before forcing.
    for _ in $(seq 40); do [[ -d /proc/$pid ]] || { rm -f "$pidfile"; return 0; }; sleep 0.25; done
    log "$name did not exit after 10 s; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

# Order: compute daemon, controller, then the authentication service they both use.
stop_pidfile slurmd "$D/run/slurmd.pid"
stop_pidfile slurmctld "$D/run/slurmctld.pid"
stop_pidfile munged /run/munge/munged.pid

if [[ $purge -eq 1 ]]; then
    for f in slurm.conf gres.conf; do
        [[ "$(readlink "$ETC/$f" 2>/dev/null)" == "$D/$f" ]] && rm -f "$ETC/$f"
    done
    log "removing $D"
    rm -rf "$D"
fi
log "done"
