#!/usr/bin/env bash
# The device suite in one command. Here (no GPU needed):
#   bench/device/prepare_cases.py        # PTX + manifests into build-device/
# then through the device tool, carrying build-device:
#   bash bench/device/run.sh
# It prints the GPU, runs every case, reruns the small one under
# compute-sanitizer memcheck, writes $OUT/device_check.json and prints a
# table last.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/gsa-device}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
python3 bench/device/device_check.py --cases build-device/cases.json 2>&1 | tee "$OUT/device_check.log"
exit "${PIPESTATUS[0]}"
