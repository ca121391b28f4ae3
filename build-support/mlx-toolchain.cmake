# Forge build support: CMake toolchain file used by mlx-sys's build of mlx-c
# on Linux (cargo sets it only for Linux targets; see .cargo/config.toml).
# It makes mlx-c build against an installed MLX instead of fetching MLX
# from GitHub.
#
# Which MLX: $MLX_DIR when set (an install prefix holding lib/libmlx.so, or
# the folder holding MLXConfig.cmake), else the wheel that
# `cargo xtask setup` installs in .forge/mlx.
if(DEFINED ENV{MLX_DIR} AND NOT "$ENV{MLX_DIR}" STREQUAL "")
  set(_forge_mlx "$ENV{MLX_DIR}")
else()
  set(_forge_mlx "${CMAKE_CURRENT_LIST_DIR}/../.forge/mlx/mlx")
endif()
if(EXISTS "${_forge_mlx}/share/cmake/MLX/MLXConfig.cmake")
  set(_forge_mlx "${_forge_mlx}/share/cmake/MLX")
endif()
if(NOT EXISTS "${_forge_mlx}/MLXConfig.cmake")
  message(FATAL_ERROR
    "Forge: no MLX found at ${_forge_mlx}. Run `cargo xtask setup`, "
    "or set MLX_DIR to an MLX install prefix.")
endif()

set(MLX_DIR "${_forge_mlx}" CACHE PATH "MLX CMake package folder" FORCE)
set(MLX_C_USE_SYSTEM_MLX ON CACHE BOOL "Build mlx-c against an installed MLX" FORCE)
set(MLX_C_BUILD_EXAMPLES OFF CACHE BOOL "No mlx-c examples" FORCE)
