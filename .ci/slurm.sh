#!/usr/bin/env bash
# A real, private, single-node Slurm cluster on localhost, for tests that submit job arrays.
#
#   .ci/slurm.sh available            exit 0 if Slurm can be brought up here, else 1 and a reason
#   .ci/slurm.sh up DIR               install (if missing) and start munged, slurmctld, slurmd,
#                                     all private to DIR; wait until the node is idle; write
#                                     DIR/env.sh. Then: source DIR/env.sh; sbatch ...
#   .ci/slurm.sh wait DIR JOBID [TIMEOUT_S]
#                                     poll `squeue -h -j JOBID` until the job (every array task)
#                                     has left the queue; exit 0 if every task COMPLETED with exit
#                                     code 0, 2 if any task failed (listed on stderr), 3 if it
#                                     left no record, 124 on timeout (default 300 s; the job is
#                                     left as it is: `down` cancels it).
#   .ci/slurm.sh down DIR             cancel what is still queued, stop exactly the daemons `up`
#                                     started (by the PIDs it recorded), wait for them to exit,
#                                     and kill any job step left behind. Safe to call twice.
#
# What `up` makes under DIR (which it creates; an absolute path is recorded):
#   slurm.conf, env.sh           the cluster's config; env.sh exports SLURM_CONF (and NSBI_SLURM_DIR)
#   munge/                       munge.key (0600), munge.socket, munged pid/seed (dir mode 755)
#   state/ spool/                StateSaveLocation, SlurmdSpoolDir (wiped on every `up`)
#   log/                         slurmctld.log, slurmd.log, jobcomp.txt, {munged,slurmctld,slurmd}.out
#                                (the daemons' stdio: `up` shows their tails when it fails)
#   pids/                        munged.pid, slurmctld.pid, slurmd.pid: the PIDs `up` started
#
# The node offers the real CPU count (`slurmd -C`); the one partition `debug` (default) has
# OverSubscribe=FORCE:$NSBI_SLURM_OVERSUBSCRIBE (default 4), so up to 4 single-CPU jobs or array
# tasks share each CPU: an array of 8 runs at once on 2 cores. Memory is not a consumable
# resource (CR_CPU). Ports are private: two free TCP ports picked at `up` time.
# `up` takes ~1 s once installed (apt-get install ~15 s the first time); slurmctld's first
# scheduling pass comes ~3 s after it starts, so the first job waits ~2-3 s, later ones
# start at once (SchedulerParameters=batch_sched_delay=0). NSBI_SLURM_UP_TIMEOUT_S (60) bounds
# the wait for an idle node.
#
# The daemons run in their own session (setsid), with stdio to files, so they outlive the
# caller and never hold its pipes open: always pair `up` with `down` (e.g. in a trap or a
# fixture's teardown). `up` refuses a DIR whose daemons are still running.
#
# Failure detection in `wait`: sacct needs slurmdbd, which this cluster does not run. Instead
# slurmctld writes every finished job and array task to DIR/log/jobcomp.txt
# (JobCompType=jobcomp/filetxt: JobState=, ExitCode=, ArrayJobId=, ArrayTaskId=); `wait`
# reads the lines of JOBID from it. Callers may also check their tasks' output files.
#
# Runs as root (as CI and developers' machines do); with passwordless sudo it re-runs itself
# under `sudo -n`. apt-get is used only when a package is missing (Debian's slurm-wlm 22.05).
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
PACKAGES=(slurmctld slurmd slurm-client munge)
DAEMONS=(munged slurmctld slurmd)   # start order; stopped in reverse
UP_TIMEOUT_S="${NSBI_SLURM_UP_TIMEOUT_S:-60}"
OVERSUBSCRIBE="${NSBI_SLURM_OVERSUBSCRIBE:-4}"

die() { echo "slurm.sh: $*" >&2; exit 1; }
note() { echo "slurm.sh: $*" >&2; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF" >&2
    exit 64
}

have_binaries() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 &&
        command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1
}

# Why Slurm cannot be brought up here (empty when it can).
why_unavailable() {
    [ "$(uname -s)" = Linux ] || { echo "not Linux"; return; }
    if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
        echo "needs root or passwordless sudo (slurmd runs jobs as their user)"
        return
    fi
    if ! have_binaries && ! command -v apt-get >/dev/null 2>&1; then
        echo "Slurm is not installed and apt-get is not present to install ${PACKAGES[*]}"
        return
    fi
}

as_root() {  # re-run this script as root when we are not
    if [ "$(id -u)" -ne 0 ]; then
        sudo -n true 2>/dev/null || die "needs root or passwordless sudo"
        exec sudo -n -- "$SELF" "$@"
    fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && have_binaries && return 0
    [ ${#missing[@]} -eq 0 ] && missing=("${PACKAGES[@]}")
    command -v apt-get >/dev/null 2>&1 || die "Slurm is missing (${missing[*]}) and apt-get is not present"
    note "installing Debian packages: ${missing[*]}"
    local t0=$SECONDS
    # policy-rc.d or no systemd: Debian's maintainer scripts do not start the daemons here.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 \
        --no-install-recommends "${missing[@]}" >/tmp/slurm-sh-apt.$$.log 2>&1 || {
        note "apt-get install failed once; running apt-get update and trying again"
        apt-get update -qq >>/tmp/slurm-sh-apt.$$.log 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 \
            --no-install-recommends "${missing[@]}" >>/tmp/slurm-sh-apt.$$.log 2>&1 || { tail -20 /tmp/slurm-sh-apt.$$.log >&2; die "apt-get install failed"; }
    }
    rm -f /tmp/slurm-sh-apt.$$.log
    have_binaries || die "installed ${missing[*]} but slurmctld/slurmd/sbatch/munged are still not on PATH"
    note "installed in $((SECONDS - t0)) s"
}

# Two free TCP ports on 127.0.0.1 (the kernel picks them; a race with another process is
# possible but unlikely, and `up` fails clearly if a daemon cannot bind).
free_ports() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
    else
        local base=$((20000 + RANDOM % 20000))
        echo "$base $((base + 1))"
    fi
}

# Is PID alive, named NAME, and started by `up` for DIR (the marker in its environment)?
is_ours() {
    local pid=$1 name=$2 dir=$3 state
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    [ "$state" != Z ] || return 1
    grep -qzxF "NSBI_SLURM_DAEMON_OF=$dir" "/proc/$pid/environ" 2>/dev/null
}

alive() {  # alive and not a zombie
    local pid=$1 state
    [ -d "/proc/$pid" ] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$state" ] && [ "$state" != Z ]
}

# Send SIG to the PIDs, then wait up to T seconds for them to exit; SIGKILL what is left.
stop_pids() {
    local sig=$1 t=$2; shift 2
    [ $# -gt 0 ] || return 0
    local pid left deadline=$((SECONDS + t))
    for pid in "$@"; do kill -"$sig" "$pid" 2>/dev/null || true; done
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} -eq 0 ] && return 0
        [ $SECONDS -ge $deadline ] && break
        sleep 0.2
    done
    note "still running after ${t}s, sending SIGKILL: ${left[*]}"
    for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 5))
    while [ $SECONDS -lt $deadline ]; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} -eq 0 ] && return 0
        sleep 0.2
    done
    note "could not stop: ${left[*]}"
    return 1
}

# Processes left by this cluster's jobs: slurmstepd (its environment is slurmd's, so it has the
# marker) and job processes (submitted from env.sh: SLURM_CONF=DIR/slurm.conf and a SLURM_JOB_ID).
leftover_pids() {
    local dir=$1 f p
    {
        grep -lzxF "NSBI_SLURM_DAEMON_OF=$dir" /proc/[0-9]*/environ 2>/dev/null || true
        for f in $(grep -lzxF "SLURM_CONF=$dir/slurm.conf" /proc/[0-9]*/environ 2>/dev/null || true); do
            if grep -qz '^SLURM_JOB_ID=' "$f" 2>/dev/null; then echo "$f"; fi
        done
    } | sort -u | while read -r f; do
        p=${f#/proc/}
        p=${p%/environ}
        if [ "$p" != $$ ] && alive "$p"; then echo "$p"; fi
    done
}

log_tails() {  # the daemons' stdio (with -D/-F they log there too, including fatal errors)
    local dir=$1 f
    for f in "$dir"/log/munged.out "$dir"/log/slurmctld.out "$dir"/log/slurmd.out; do
        [ -s "$f" ] || continue
        echo "----- tail $f" >&2
        grep -v -e 'pmix' -e 'state file' -e 'Trying backup state' -e 'to recover' "$f" | tail -n 15 >&2 || true
    done
}

cmd_available() {
    local why
    why=$(why_unavailable)
    if [ -n "$why" ]; then
        echo "slurm.sh: Slurm unavailable: $why" >&2
        exit 1
    fi
    if have_binaries; then
        echo "slurm.sh: available (installed: slurmctld $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?'))"
    else
        echo "slurm.sh: available (installable with apt-get: ${PACKAGES[*]})"
    fi
}

cmd_up() {
    local dir=$1
    as_root up "$dir"
    local why
    why=$(why_unavailable)
    [ -z "$why" ] || die "Slurm unavailable: $why"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    local name pid
    for name in "${DAEMONS[@]}"; do
        pid=$(cat "$dir/pids/$name.pid" 2>/dev/null || true)
        if is_ours "$pid" "$name" "$dir"; then
            die "$dir already has a running $name (PID $pid): run '$SELF down $dir' first"
        fi
    done
    [[ "$dir" != *[[:space:]]* ]] || die "DIR must not contain whitespace (slurm.conf paths): '$dir'"
    # Unix socket paths are limited to 107 bytes (slurmd puts <node>_<job>.<step> in its spool).
    [ ${#dir} -le 70 ] || die "DIR path too long for Unix sockets (${#dir} > 70 bytes): $dir"

    install_packages

    local t0=$SECONDS host cpus_line ctld_port slurmd_port
    host=$(hostname -s)
    [ -n "$host" ] || die "hostname -s is empty"
    rm -rf "$dir/state" "$dir/spool" "$dir/pids" "$dir/log" "$dir/munge" "$dir/env.sh"
    mkdir -p "$dir/state" "$dir/spool" "$dir/pids" "$dir/log" "$dir/munge"
    chmod 755 "$dir" "$dir/munge"
    chmod 700 "$dir/state" "$dir/spool"

    # Real hardware, as slurmd sees it: "NodeName=h CPUs=2 Boards=1 SocketsPerBoard=1 ... RealMemory=N"
    cpus_line=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -1 | sed 's/^NodeName=[^ ]* //')
    [[ "$cpus_line" == *CPUs=* ]] || die "slurmd -C did not report the node's CPUs"
    read -r ctld_port slurmd_port <<<"$(free_ports)"

    cat >"$dir/slurm.conf" <<EOF
# Private single-node cluster made by .ci/slurm.sh up $dir
ClusterName=nsbi-ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/log/slurmctld.pidfile
SlurmdPidFile=$dir/log/slurmd.pidfile
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
MaxArraySize=10001
MaxJobCount=50000
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 $cpus_line State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$OVERSUBSCRIBE
EOF
    : >"$dir/plugstack.conf"
    cat >"$dir/env.sh" <<EOF
# source this to use the private Slurm cluster started by .ci/slurm.sh up $dir
export SLURM_CONF=$dir/slurm.conf
export NSBI_SLURM_DIR=$dir
EOF

    # Anything that fails from here on stops what was started, shows the logs, and exits 1.
    fail() {
        note "up failed: $*"
        log_tails "$dir"
        cmd_down "$dir" >/dev/null 2>&1 || true
        exit 1
    }

    # munge: a private key (mode 0600 in a 0755 dir, both owned by us) and socket.
    if ! mungekey -c -k "$dir/munge/munge.key" >/dev/null 2>&1; then
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$dir/munge/munge.key"

    # Daemons: in the foreground of their own session, stdio to files (never the caller's pipes),
    # with a marker in their environment so that `down` touches nothing it did not start.
    start() {
        local name=$1; shift
        NSBI_SLURM_DAEMON_OF="$dir" SLURM_CONF="$dir/slurm.conf" \
            setsid "$@" </dev/null >"$dir/log/$name.out" 2>&1 &
        local p=$!
        echo "$p" >"$dir/pids/$name.pid"
        sleep 0.2
        alive "$p" || fail "$name exited at once"
    }

    start munged munged -F --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    local deadline=$((SECONDS + UP_TIMEOUT_S))
    until [ -S "$dir/munge/munge.socket" ] && munge -n -S "$dir/munge/munge.socket" 2>/dev/null |
        unmunge -S "$dir/munge/munge.socket" >/dev/null 2>&1; do
        alive "$(cat "$dir/pids/munged.pid")" || fail "munged exited"
        [ $SECONDS -lt $deadline ] || fail "munged did not answer within ${UP_TIMEOUT_S}s"
        sleep 0.1
    done

    start slurmctld slurmctld -D -i -f "$dir/slurm.conf"
    start slurmd slurmd -D -N "$host" -f "$dir/slurm.conf"

    export SLURM_CONF="$dir/slurm.conf"
    local st=""
    while :; do
        st=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
        [ "$st" = idle ] && break
        for name in slurmctld slurmd munged; do
            alive "$(cat "$dir/pids/$name.pid")" || fail "$name exited"
        done
        [ $SECONDS -lt $deadline ] || fail "node not idle within ${UP_TIMEOUT_S}s (sinfo state: '${st:-none}')"
        sleep 0.2
    done
    echo "slurm.sh: up in $((SECONDS - t0)) s: node $host ($cpus_line), partition debug" \
        "(OverSubscribe=FORCE:$OVERSUBSCRIBE), ports $ctld_port/$slurmd_port; source $dir/env.sh"
}

cmd_down() {
    local dir=$1
    as_root down "$dir"
    [ -d "$dir" ] || { note "down: $dir does not exist; nothing to stop"; return 0; }
    dir=$(cd "$dir" && pwd -P)
    local name pid pids=() ctld_alive=0
    pid=$(cat "$dir/pids/slurmctld.pid" 2>/dev/null || true)
    is_ours "$pid" slurmctld "$dir" && ctld_alive=1

    # Cancel what is queued or running, so that job steps end cleanly with their daemons.
    if [ $ctld_alive -eq 1 ] && [ -f "$dir/slurm.conf" ]; then
        local jobs deadline=$((SECONDS + 15))
        jobs=$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %F 2>/dev/null | sort -u || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            SLURM_CONF="$dir/slurm.conf" scancel $jobs 2>/dev/null || true
            while [ -n "$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %i 2>/dev/null || true)" ] &&
                [ $SECONDS -lt $deadline ]; do
                sleep 0.2
            done
        fi
    fi

    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name=${DAEMONS[$i]}
        pid=$(cat "$dir/pids/$name.pid" 2>/dev/null || true)
        if is_ours "$pid" "$name" "$dir"; then
            stop_pids TERM 15 "$pid" || true
            pids+=("$pid")
        fi
    done
    # Job steps (slurmstepd and its children) outlive slurmd: stop what this cluster left.
    local left
    mapfile -t left < <(leftover_pids "$dir")
    if [ ${#left[@]} -gt 0 ]; then
        note "stopping leftover job processes: ${left[*]}"
        stop_pids TERM 5 "${left[@]}" || true
    fi
    rm -f "$dir"/pids/*.pid "$dir/munge/munge.socket" "$dir/munge/munge.socket.lock"
    mapfile -t left < <(leftover_pids "$dir")
    [ ${#left[@]} -eq 0 ] || die "down: processes still running: ${left[*]}"
    if [ ${#pids[@]} -gt 0 ]; then
        echo "slurm.sh: down: stopped PIDs ${pids[*]}"
    else
        echo "slurm.sh: down: nothing was running for $dir"
    fi
}

# Exit 0: every task COMPLETED with exit code 0; 2: a task failed (listed); 124: timeout;
# 3: the job left the queue but jobcomp.txt has no record of it.
cmd_wait() {
    local dir=$1 job=$2 timeout=${3:-300}
    [[ "$job" =~ ^[0-9]+$ ]] || die "wait: JOBID must be a number (the one sbatch --parsable prints): '$job'"
    [ -f "$dir/slurm.conf" ] || die "wait: no $dir/slurm.conf (was 'up' run?)"
    dir=$(cd "$dir" && pwd -P)
    export SLURM_CONF="$dir/slurm.conf"
    local deadline=$((SECONDS + timeout)) out err errs=0
    while :; do
        if out=$(squeue -h -j "$job" -o '%i %T' 2>/tmp/slurm-sh-wait.$$); then
            errs=0
            [ -z "$out" ] && break
        else
            err=$(cat /tmp/slurm-sh-wait.$$)
            # Purged from slurmctld (older than MinJobAge): gone.
            [[ "$err" == *"Invalid job id"* ]] && break
            errs=$((errs + 1))
            [ $errs -lt 20 ] || { rm -f /tmp/slurm-sh-wait.$$; die "wait: squeue keeps failing: $err"; }
        fi
        if [ $SECONDS -ge $deadline ]; then
            rm -f /tmp/slurm-sh-wait.$$
            note "wait: job $job still queued after ${timeout}s:"
            echo "$out" | head -20 >&2
            exit 124
        fi
        sleep 0.5
    done
    rm -f /tmp/slurm-sh-wait.$$

    # jobcomp/filetxt: one line per finished job or array task, written when it ends.
    local comp="$dir/log/jobcomp.txt" lines bad
    lines=$(grep -E "(^| )JobId=$job( |$)|(^| )ArrayJobId=$job( |$)" "$comp" 2>/dev/null || true)
    if [ -z "$lines" ]; then
        # The last task's record can trail its removal from squeue by a moment.
        sleep 1
        lines=$(grep -E "(^| )JobId=$job( |$)|(^| )ArrayJobId=$job( |$)" "$comp" 2>/dev/null || true)
    fi
    [ -n "$lines" ] || { note "wait: job $job is gone but has no record in $comp"; exit 3; }
    bad=$(grep -vE 'JobState=COMPLETED .*ExitCode=0:0( |$)' <<<"$lines" || true)
    if [ -n "$bad" ]; then
        note "wait: job $job: $(wc -l <<<"$bad") of $(wc -l <<<"$lines") task(s) failed:"
        local l f out
        while IFS= read -r l; do
            out=""
            for f in JobId ArrayTaskId JobState ExitCode; do
                out+=" $(grep -oE "(^| )$f=[^ ]*" <<<"$l" | tr -d ' ' || true)"
            done
            echo " ${out# }" >&2
        done <<<"$bad"
        exit 2
    fi
    echo "slurm.sh: job $job done: $(wc -l <<<"$lines") task(s) completed"
}

case "${1:-}" in
    available) cmd_available ;;
    up) [ $# -eq 2 ] || usage; cmd_up "$2" ;;
    down) [ $# -eq 2 ] || usage; cmd_down "$2" ;;
    wait) { [ $# -ge 3 ] && [ $# -le 4 ]; } || usage; cmd_wait "$2" "$3" "${4:-300}" ;;
    *) usage ;;
esac
