#!/usr/bin/env bash
# The README's screenshots of TensorBoard and optuna-dashboard, taken with headless Chromium (Debian's
# `chromium` package) from a finished sweep:
#   docs/images/screenshots.sh runs/sweeps/threshold-20261202-045400
# Starts both servers on loopback ports, waits for them, screenshots, stops them.
set -euo pipefail
sweep=${1:?usage: docs/images/screenshots.sh SWEEP_DIR}
out=$(cd "$(dirname "$0")" && pwd)
bin=${BIN:-.venv/bin}
"$bin/tensorboard" --logdir "$sweep/runs" --host 127.0.0.1 --port 6123 >/dev/null 2>&1 & tb=$!
"$bin/optuna-dashboard" "sqlite:///$(cd "$sweep" && pwd)/optuna.db" --host 127.0.0.1 --port 8123 >/dev/null 2>&1 & od=$!
trap 'kill $tb $od 2>/dev/null' EXIT
# Up, and TensorBoard done reading the trials' event files (its run list is filled).
for _ in $(seq 90); do curl -sf http://127.0.0.1:6123/data/runs | grep -q tensorboard && break; sleep 1; done
for _ in $(seq 60); do curl -sf -o /dev/null http://127.0.0.1:8123/api/studies && break; sleep 1; done
sleep 3
shot() {  # url file
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1000 \
    --virtual-time-budget=40000 --enable-unsafe-swiftshader --screenshot="$2" "$1" 2>/dev/null
}
# TensorBoard's time series of F_T's self-training in every trial (the tag filter is in the URL).
shot "http://127.0.0.1:6123/?darkMode=false#scalars&tagFilter=adapt_T_r1%2F(val_miou%7Closs_pseudo)%24&_smoothingWeight=0" "$out/tensorboard.png"
shot "http://127.0.0.1:8123/dashboard/studies/1" "$out/optuna-dashboard.png"
echo "wrote $out/tensorboard.png $out/optuna-dashboard.png"
