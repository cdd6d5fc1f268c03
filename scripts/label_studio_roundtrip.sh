#!/usr/bin/env bash
# The Label Studio round trip against a real Label Studio (PyPI label-studio, in a virtual
# environment of its own so its pins never meet the service's), started here on a free
# loopback port and stopped at the end:
#   classify a few comments (batch_classify.py, fast model) -> tasks with pre-annotations ->
#   a Label Studio project from the generated config -> one annotation through its API ->
#   its JSON export -> imported as gold -> the gold holds the correction.
#
#   bash scripts/label_studio_roundtrip.sh      (first time: about 3 minutes to install Label Studio)
# Settings: LS_VENV (default ~/.cache/classifier/label-studio-venv), LLM (default smollm2-135m).
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VENV=${LS_VENV:-$HOME/.cache/classifier/label-studio-venv}
PY=.venv/bin/python
work=$(mktemp -d)
trap 'kill "${ls_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

if [ ! -x "$LS_VENV/bin/label-studio" ]; then
  echo "[roundtrip] installing label-studio into $LS_VENV" >&2
  python3 -m venv "$LS_VENV"
  "$LS_VENV/bin/pip" install -q --disable-pip-version-check label-studio
fi

port=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
token=$("$PY" -c "import secrets; print(secrets.token_hex(20))")
LABEL_STUDIO_USERNAME=annotator@example.com LABEL_STUDIO_PASSWORD="$token" LABEL_STUDIO_USER_TOKEN="$token" \
  LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true \
  "$LS_VENV/bin/label-studio" start --no-browser --internal-host 127.0.0.1 --port "$port" \
  --data-dir "$work/label-studio" >"$work/label-studio.log" 2>&1 &
ls_pid=$!

printf 'text\nThe waiter was rude to us.\n"Great sushi, fair prices."\nThe room was far too loud to talk.\n' >"$work/comments.csv"
"$PY" batch_classify.py --config configs/restaurants.json --input-file "$work/comments.csv" --input-column text \
  --save-path "$work/results.json" --llm "${LLM:-smollm2-135m}" >"$work/batch.log" 2>&1 || { tail -20 "$work/batch.log"; exit 1; }

for _ in $(seq 1 120); do
  curl -fs -o /dev/null -H "Authorization: Token $token" "http://127.0.0.1:$port/api/projects" && break
  sleep 1
done
"$PY" scripts/label_studio_roundtrip.py --url "http://127.0.0.1:$port" --token "$token" \
  --results "$work/results.json" --config configs/restaurants.json --data-dir "$work/gold"
