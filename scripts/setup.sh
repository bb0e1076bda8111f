#!/usr/bin/env bash
# Set up napari-unet for development in ./.venv, on a fresh machine.
#
#   bash scripts/setup.sh          # the plugin, napari and a Qt binding (PyQt6)
#   bash scripts/setup.sh --test   # the same plus the test tools (pytest, pytest-qt, Xvfb)
#
# Safe to run again: it keeps what is already installed and only adds what is missing.
#
# PyTorch: on Linux without an NVIDIA GPU it installs the CPU build of torch (no CUDA
# download, a few hundred MB instead of several GB). With an NVIDIA GPU (nvidia-smi works),
# or on macOS, it lets pip install the default torch from PyPI, which is the CUDA build on
# Linux and the MPS-capable build on macOS. A torch already in .venv is always kept, so you
# can install the build you want first: .venv/bin/pip install torch --index-url ...
set -euo pipefail

cd "$(dirname "$0")/.."
want_tests=0
for arg in "$@"; do
  case $arg in
    --test) want_tests=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --test or nothing)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
torch_cpu_version=${TORCH_CPU_VERSION:-2.13.0}
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- 1. System libraries for Qt and OpenGL (Debian/Ubuntu), and Xvfb for headless tests.
if [[ $(uname -s) == Linux ]] && command -v apt-get >/dev/null; then
  debs=(libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0
        libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
        libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libgl1-mesa-dri)
  (( want_tests )) && debs+=(xvfb)
  missing=()
  for deb in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'install ok installed' || missing+=("$deb")
  done
  if (( ${#missing[@]} )); then
    sudo=()
    (( EUID == 0 )) || sudo=(sudo)
    say "installing Debian packages: ${missing[*]}"
    if ! { "${sudo[@]}" apt-get update -qq && \
           DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      say "could not install ${missing[*]}; install them yourself (apt-get install ${missing[*]})"
      exit 1
    fi
  fi
fi

# --- 2. A virtual environment.
if [[ ! -x .venv/bin/python ]]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    say "napari-unet needs Python >= 3.11; '$python' is $("$python" --version 2>&1). Set PYTHON=python3.12."
    exit 1; }
  say "creating .venv with $("$python" --version 2>&1)"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q)

# --- 3. PyTorch: the CPU build where there is no GPU to use.
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  if [[ $(uname -s) == Linux ]] && ! nvidia-smi -L >/dev/null 2>&1; then
    say "no NVIDIA GPU found: installing the CPU build torch==$torch_cpu_version+cpu"
    # The pip indexes configured on this machine first; then PyTorch's own CPU index.
    "${pip[@]}" "torch==$torch_cpu_version+cpu" 2>/dev/null || \
      "${pip[@]}" "torch==$torch_cpu_version+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
  else
    say "GPU or macOS: torch comes from PyPI with the plugin (CUDA build on Linux)"
  fi
fi

# --- 4. The plugin itself, editable, with a Qt binding (and the test tools).
# (Its distribution was called napari-unet until 2026-12-05, a name another project holds
# on PyPI: a .venv made before then loses the old name, so napari sees one plugin.)
if .venv/bin/python -m pip show -q napari-unet >/dev/null 2>&1; then
  say "removing the old distribution name napari-unet from .venv"
  .venv/bin/python -m pip uninstall -y -q napari-unet
fi
extras=qt
(( want_tests )) && extras=qt,test
say "installing napari-paint-unet[$extras] (editable)"
"${pip[@]}" -e ".[$extras]"
say "done: $(.venv/bin/python -c 'import torch, napari, napari_unet; print(f"napari-paint-unet {napari_unet.__version__}, napari {napari.__version__}, torch {torch.__version__}")')"
