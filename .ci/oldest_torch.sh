#!/usr/bin/env bash
# The whole test suite again on the oldest supported stack, torch 2.11.0 + triton 3.6.0 (the stock
# Python of the lent H200): its own virtual environment (requirements-oldest.txt; pip caches the
# ~3 GB download) and its own copy of the working tree, so that its build of the extension does not
# replace the one in inpaint_fast/. The extension is compiled with the caller's FORCE_CUDA /
# TORCH_CUDA_ARCH_LIST (CI: every .cu for sm_90); the tests compile the Triton kernels ahead of time
# for sm_90 against triton 3.6. It also checks that `pip install -r requirements.txt` keeps that
# torch (a supported one). Extra arguments go to pytest.
#
#   bash .ci/oldest_torch.sh [pytest args]   # venv (reused) and tree under .ci-oldest/ (git-ignored)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/.ci-oldest"
venv="$work/venv"
tree="$work/tree"

mkdir -p "$work"
[ -x "$venv/bin/python" ] || python -m venv "$venv"
"$venv/bin/python" -m pip install -q -r "$root/requirements-oldest.txt"
# The user-facing requirements keep an installed torch that is in range: nothing to replace here.
if "$venv/bin/python" -m pip install --dry-run -r "$root/requirements.txt" 2>/dev/null \
    | grep -E "^Would install.* (torch|torchvision|triton)-[0-9]"; then
  echo "requirements.txt would replace the installed torch 2.11 stack (above)" >&2
  exit 1
fi

# A fresh copy of the tracked and untracked-but-not-ignored files (pip builds in a temporary folder
# anyway: nothing to reuse).
rm -rf "$tree" && mkdir -p "$tree"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$tree"

cd "$tree"
"$venv/bin/python" -c 'import torch, triton; print(f"oldest supported stack: torch {torch.__version__}, triton {triton.__version__}")'
"$venv/bin/python" -m pip install -q --no-build-isolation -e .
"$venv/bin/python" -m pytest -q "$@"
