#!/usr/bin/env bash
# Watch a drop folder: when it has been quiet for QUIET seconds, colour whatever is new with
# `medcolor batch` (resumable: series already done are skipped) and C-STORE the new series to a PACS.
# Adapt the variables; run it under systemd or tmux. Ctrl-C / SIGTERM stop it cleanly (medcolor removes
# any half-written series; the next pass redoes it).
#
#   IN=/data/incoming OUT=/data/coloured PACS=pacs.example:104:ORTHANC ./watch_and_export.sh
set -euo pipefail
IN="${IN:?set IN to the folder to watch}"
OUT="${OUT:?set OUT to the output folder (not inside IN)}"
PACS="${PACS:-}"                 # HOST:PORT:AET; empty: colour only
METHOD="${METHOD:-exemplar}"
WORKERS="${WORKERS:-1}"
QUIET="${QUIET:-30}"             # seconds without new/changed files before a pass (series still arriving)
POLL="${POLL:-10}"
EXTRA=(${EXTRA:-})               # e.g. EXTRA="--deidentify --window lung"

stamp() { find "$IN" -type f -printf '%T@ %s %p\n' 2>/dev/null | sort | md5sum | cut -d' ' -f1; }
last="" ; changed_at=$(date +%s)
while true; do
  now_stamp=$(stamp); now=$(date +%s)
  if [[ "$now_stamp" != "$last" ]]; then last="$now_stamp"; changed_at=$now; pending=1; fi
  if [[ "${pending:-0}" == 1 && $((now - changed_at)) -ge $QUIET ]]; then
    args=(batch "$IN" "$OUT" --method "$METHOD" --workers "$WORKERS" "${EXTRA[@]}")
    [[ -n "$PACS" ]] && args+=(--send "$PACS")
    echo "$(date -Is) medcolor ${args[*]}"
    if medcolor "${args[@]}"; then echo "$(date -Is) pass OK"; else echo "$(date -Is) pass had failures: see $OUT/batch.csv"; fi
    pending=0
  fi
  sleep "$POLL"
done
