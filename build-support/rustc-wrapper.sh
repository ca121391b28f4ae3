#!/usr/bin/env bash
# Forge build support: cargo's rustc wrapper (see .cargo/config.toml).
#
# On Apple targets it runs rustc unchanged. Elsewhere:
#  - for the crate mlx_sys it drops the macOS-only link directives that
#    mlx-sys's build script emits (c++, objc, frameworks, and the static
#    mlx / gguflib archives that only its own MLX build produces) and links
#    the shared libmlx and libstdc++ instead;
#  - for every crate it adds the MLX library folder to the search path and
#    to the rpath, so binaries find libmlx.so;
#  - it links OpenBLAS ahead of the wheel's reference BLAS when OpenBLAS is
#    installed (about 30x faster f32 matmul on the CPU backend).
set -euo pipefail
rustc="$1"
shift

host_or_target=""
prev=""
for arg in "$@"; do
  if [[ "$prev" == "--target" ]]; then host_or_target="$arg"; fi
  prev="$arg"
done
if [[ -z "$host_or_target" && "$(uname -s)" == "Darwin" ]]; then
  host_or_target="apple"
fi
case "$host_or_target" in
  *apple*) exec "$rustc" "$@" ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mlx="${MLX_DIR:-$here/../.forge/mlx/mlx}"
if [[ -f "$mlx/MLXConfig.cmake" ]]; then mlx="$mlx/../../.."; fi
mlx_lib="$(cd "$mlx/lib" 2>/dev/null && pwd || echo "$mlx/lib")"

crate=""
prev=""
for arg in "$@"; do
  if [[ "$prev" == "--crate-name" ]]; then crate="$arg"; fi
  prev="$arg"
done

args=()
if [[ "$crate" == "mlx_sys" ]]; then
  skip_next=0
  for arg in "$@"; do
    if (( skip_next )); then
      skip_next=0
      case "$arg" in
        c++|dylib=objc|framework=*|static=mlx|static=gguflib|static=jaccl|static=clang_rt.osx) continue ;;
        *) args+=("-l" "$arg"); continue ;;
      esac
    fi
    if [[ "$arg" == "-l" ]]; then skip_next=1; continue; fi
    case "$arg" in
      -lc++|-ldylib=objc|-lframework=*|-lstatic=mlx|-lstatic=gguflib|-lstatic=jaccl) continue ;;
    esac
    args+=("$arg")
  done
  args+=("-l" "dylib=mlx" "-l" "dylib=stdc++")
else
  args=("$@")
fi

args+=("-L" "native=$mlx_lib" "-C" "link-arg=-Wl,-rpath,$mlx_lib")
for blas in /usr/lib/x86_64-linux-gnu/libopenblas.so /usr/lib/aarch64-linux-gnu/libopenblas.so; do
  if [[ -e "$blas" && "${FORGE_NO_OPENBLAS:-}" == "" ]]; then
    args+=("-C" "link-arg=-Wl,--no-as-needed" "-C" "link-arg=-lopenblas" "-C" "link-arg=-Wl,--as-needed")
    break
  fi
done
exec "$rustc" "${args[@]}"
