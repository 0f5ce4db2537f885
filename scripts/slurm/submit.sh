#!/bin/bash
# Submit a sharded fisher-flow sweep: a job array of N shards, then a merge job that starts
# only when every shard succeeded (--dependency=afterok). Extra arguments go to both sbatch
# calls (e.g. --partition=short --time=01:00:00).
#
#   scripts/slurm/submit.sh SPEC.toml DIR N [SBATCH-ARGS...]
#
# FISHER_FLOW names the binary (default: fisher-flow on PATH); it is exported to the jobs.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 SPEC.toml DIR N [SBATCH-ARGS...]" >&2
  exit 2
fi
spec=$1 out=$2 n=$3
shift 3
case $n in
  '' | *[!0-9]* | 0) echo "$0: N must be a positive integer, got '$n'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
export FISHER_FLOW=${FISHER_FLOW:-fisher-flow}
mkdir -p "$out"
array=$(sbatch --parsable --array=0-$((n - 1)) --output="$out/slurm-%A_%a.out" "$@" \
  "$here/sweep.sbatch" "$spec" "$out")
array=${array%%;*}
merge=$(sbatch --parsable --dependency=afterok:"$array" --job-name=ff-merge \
  --output="$out/slurm-merge-%j.out" "$@" \
  --wrap "$(printf '%q ' "$FISHER_FLOW" sweep merge "$out")")
merge=${merge%%;*}
echo "submitted shard array $array (N = $n) and merge job $merge; results in $out"
