// Internal: the x86 intrinsics headers, included before anything else that may pull them in (TBB,
// xsimd). GCC 12.2's avx512fintrin.h makes its "undefined" vectors by self-initialisation
// (`__m512 __Y = __Y;`), and -Wuninitialized reported each use after inlining: ~180 false warnings
// per build, fixed in later GCC. Diagnostic pragmas apply by source line, so the warning is off
// for the lines of these headers only.
#pragma once
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
