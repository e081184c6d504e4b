#!/usr/bin/env bash
# Sets up everything, then runs berth's main job on a fresh machine: a berthd on
# temp dirs, driven by berth's CLI and by containerd's own ctr, plus the
# embedded (in-process) API. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node scripts/main-job.js
