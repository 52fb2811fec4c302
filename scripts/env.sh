# Sourced (from the repository root) by scripts/try.sh and scripts/test.sh: picks the Python to install into and
# installs torch without replacing one that is already there. Not meant to be run on its own.
#
#   t2e_python   sets PY (the interpreter to use) and puts its bin/ first on PATH (emoji-gen, pytest, ruff)
#   t2e_torch    keeps an importable torch; else, without a GPU, the CPU build; else the pin
#
# Knobs: PYTHON (the base interpreter, default python3), T2E_TORCH_PIN, T2E_TORCH_CPU_INDEX.

T2E_TORCH_PIN="${T2E_TORCH_PIN:-torch==2.13.0}"
T2E_TORCH_CPU_INDEX="${T2E_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

t2e_die() {
  echo "error: $*" >&2
  exit 1
}

t2e_python() {
  local base="${PYTHON:-python3}"
  command -v "$base" >/dev/null 2>&1 || t2e_die "no $base on PATH: install Python 3.10 or newer"
  "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    t2e_die "$("$base" -V 2>&1) is too old: text2emoji needs Python 3.10 or newer (PYTHON=python3.12 picks another)"

  # An active virtualenv or conda env is the user's choice: install into it. Anything else may be a system
  # Python that refuses pip (PEP 668, Debian/Ubuntu's "externally-managed-environment"), so use .venv instead.
  if "$base" -c 'import os, sys; sys.exit(not (sys.prefix != sys.base_prefix or
      os.environ.get("CONDA_PREFIX") and os.path.samefile(sys.prefix, os.environ["CONDA_PREFIX"])))' 2>/dev/null
  then
    PY="$(command -v "$base")"
    echo "using the active environment's Python: $("$PY" -c 'import sys; print(sys.prefix)')"
    t2e_need_pip "the active environment"
    return 0
  fi

  if [ ! -x .venv/bin/python ]; then
    # A torch the base Python already has (a GPU user's CUDA build, say) stays visible in .venv instead of
    # being downloaded again (2.7 GB for the CUDA build).
    local flags=(--without-pip)
    if "$base" -c 'import torch' >/dev/null 2>&1; then
      flags+=(--system-site-packages)
    fi
    echo "creating .venv (a virtual environment in this folder) with $("$base" -V 2>&1)"
    "$base" -m venv "${flags[@]}" .venv ||
      t2e_die "'$base -m venv .venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv"
  fi
  PY="$PWD/.venv/bin/python"
  t2e_need_pip "the virtual environment .venv"
  export PATH="$PWD/.venv/bin:$PATH"
  echo "using .venv ($("$PY" -V 2>&1)); '. .venv/bin/activate' puts emoji-gen and emoji-bot on your PATH"
}

# Debian and Ubuntu ship Python without ensurepip unless python3-venv is installed: say so instead of failing
# later on a pip-less venv. The same step gives a pip-less environment (uv's venvs, say) its pip.
t2e_need_pip() {
  "$PY" -m pip --version >/dev/null 2>&1 && return 0
  "$PY" -m ensurepip --upgrade >/dev/null 2>&1 ||
    t2e_die "$1 has no pip and this Python has no ensurepip. On Debian/Ubuntu:" \
      "sudo apt-get install python3-venv (or python3.X-venv for your version), then run this again"
}

t2e_torch() {
  local version
  if version="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"; then
    echo "torch $version is already installed: keeping it"
    return 0
  fi
  # torch from the public package index is, on Linux, the CUDA build plus ~28 nvidia-*/triton wheels
  # (~2.7 GB). Without an NVIDIA GPU that is wasted: take the CPU build (~190 MB) from PyTorch's own index.
  # --retries 0 and a short timeout make an unreachable index fail in seconds, not minutes.
  if [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "no NVIDIA GPU: installing the CPU build of torch (~190 MB download) from $T2E_TORCH_CPU_INDEX"
    if "$PY" -m pip install -q --timeout 10 --retries 0 --index-url "$T2E_TORCH_CPU_INDEX" torch; then
      return 0
    fi
    echo "PyTorch's CPU index did not answer: installing $T2E_TORCH_PIN from the package index instead"
  fi
  "$PY" -m pip install -q "$T2E_TORCH_PIN"
}
