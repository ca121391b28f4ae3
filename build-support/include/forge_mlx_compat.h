/*
 * Forge build support: pre-included when mlx-c and its bindings are built on
 * Linux (see build-support/README.md). On Apple targets it is never included.
 *
 * 1. mlx-c declares float16_t / bfloat16_t only on aarch64; mlx-rs needs them
 *    everywhere. We declare them (2-byte types) and the guards mlx-c checks.
 * 2. gcc 12's libstdc++ has no std::format; mlx-c uses it for a few error
 *    messages. We supply a minimal one that substitutes each "{}" in order.
 */
#ifndef FORGE_MLX_COMPAT_H
#define FORGE_MLX_COMPAT_H

#if !defined(__APPLE__) && !defined(__aarch64__)

#ifdef __cplusplus
#if __has_include(<mlx/types/half_types.h>)
#include <mlx/types/half_types.h>
#define MLX_HALF_H
#define HAS_FLOAT16
#define HAS_BFLOAT16
typedef mlx::core::float16_t float16_t;
typedef mlx::core::bfloat16_t bfloat16_t;
#endif
#else /* C: the bindgen parse */
#define MLX_HALF_H
#define HAS_FLOAT16
#define HAS_BFLOAT16
typedef __fp16 float16_t;
typedef unsigned short bfloat16_t;
#endif

#endif /* not Apple, not aarch64 */

#if defined(__cplusplus) && !defined(__APPLE__) && __has_include(<mlx/mlx.h>)
#include <version>
#if !defined(__cpp_lib_format)
#include <sstream>
#include <string>
#include <string_view>
namespace std {
inline void forge_format_into(ostringstream& out, string_view pattern) {
  out << pattern;
}
template <typename First, typename... Rest>
void forge_format_into(ostringstream& out, string_view pattern,
                       const First& first, const Rest&... rest) {
  size_t slot = pattern.find("{}");
  if (slot == string_view::npos) {
    out << pattern;
    return;
  }
  out << pattern.substr(0, slot) << first;
  forge_format_into(out, pattern.substr(slot + 2), rest...);
}
template <typename... Args>
string format(string_view pattern, const Args&... args) {
  ostringstream out;
  forge_format_into(out, pattern, args...);
  return out.str();
}
} // namespace std
#endif
#endif

#endif /* FORGE_MLX_COMPAT_H */
