#!/usr/bin/env bash
# CI: a sharded sweep on a real one-node Slurm (Debian's slurm-wlm + munge), compared with the
# single-process sweep. Installs the packages if missing, writes a throw-away munge key and
# slurm.conf, starts munged, slurmctld and slurmd, submits `sbatch --wait --array=0-3`, merges,
# compares results.csv timing columns aside, and stops every daemon it started (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
repo=$(pwd)

echo "== slurm: a 4-shard sweep as a job array on a one-node Slurm"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
fi

# The debug binary `cargo test` already built (CI runs this after it): no second, release build.
cargo build --bin fisher-flow
bin="$repo/target/debug/fisher-flow"

work=$(mktemp -d /tmp/ff-slurm.XXXXXX)
chmod 755 "$work"
state="$work/state"
mkdir -p "$state/ctld" "$state/d"
export SLURM_CONF="$work/slurm.conf"
started=()

cleanup() {
  local code=$?
  # Stop only what this script started, newest first.
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    kill "${started[i]}" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$code" -ne 0 ]; then
    for f in "$work"/munged.log "$state"/*.log "$state"/*.out "$work"/out-slurm/slurm-*.out; do
      [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
  fi
  rm -rf "$work"
  exit "$code"
}
trap cleanup EXIT

# munge: a fresh key and our own munged unless one is already answering.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  umask 077
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  umask 022
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --foreground >"$work/munged.log" 2>&1 &
  started+=($!)
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n | unmunge >/dev/null
fi

host=$(hostname -s)
cat >"$SLURM_CONF" <<EOF
ClusterName=ffci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -i >"$state/slurmctld.out" 2>&1 &
started+=($!)
sleep 1
slurmd -D >"$state/slurmd.out" 2>&1 &
started+=($!)

echo "waiting for node $host to be idle"
for i in $(seq 60); do
  st=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  case $st in
    idle*) break ;;
    down* | drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  if [ "$i" -eq 60 ]; then
    echo "node never became idle (state '$st')" >&2
    exit 1
  fi
  sleep 1
done
sinfo

# A small study: inline base (inline [base] table), 2 σ × 2 solvers × 3×3 starts = 36 cases.
spec="$work/spec.toml"
cat >"$spec" <<'EOF'
epsilon = 1e-6

[base.model]
sigma = 1.0
weight = 0.5
target = [-1.5, 2.0]

[base.quadrature]
scheme = "gauss-hermite"
nodes = 64

[base.flow]
t_end = 10.0
rtol = 1e-6
atol = 1e-8

[[axis]]
name = "sigma"
values = [0.9, 1.1]

[[axis]]
name = "solver"
values = ["tsit45", "bdf"]

[[axis]]
name = "start"
grid = { mu1 = { start = -3.0, stop = 3.0, num = 3 }, mu2 = { start = -2.5, stop = 3.5, num = 3 } }
EOF

mkdir -p "$work/out-slurm"
start=$(date +%s%N)
FISHER_FLOW="$bin" sbatch --wait --array=0-3 --cpus-per-task=1 \
  --output="$work/out-slurm/slurm-%A_%a.out" scripts/slurm/sweep.sbatch "$spec" "$work/out-slurm"
end=$(date +%s%N)
echo "array of 4 shards done in $(((end - start) / 1000000)) ms"
"$bin" sweep merge "$work/out-slurm"

"$bin" sweep "$spec" --out "$work/out-single" --quiet

# Equal up to the timing column (wall_seconds, the last one).
strip() { sed 's/,[^,]*$//' "$1"; }
if ! diff <(strip "$work/out-slurm/results.csv") <(strip "$work/out-single/results.csv") >"$work/diff"; then
  echo "sharded (Slurm) and single-process results differ:" >&2
  head -n 20 "$work/diff" >&2
  exit 1
fi
rows=$(($(wc -l <"$work/out-single/results.csv") - 1))
echo "slurm: merged 4 shards = single-process sweep ($rows cases, timing columns aside)"
echo "== slurm passed"
