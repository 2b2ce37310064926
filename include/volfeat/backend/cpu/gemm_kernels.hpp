#pragma once
// Register-blocked fp32 GEMM micro-kernels for the Cpu convolutions, one set per instruction set
// (gemm_avx512.hpp, gemm_avx2.hpp, gemm_generic.hpp), chosen once per process at run time
// (isa.hpp: the CPU's best, or VOLFEAT_CPU_ISA).
//
// A kernel computes an R x (16*NV) block of C (R output voxels, 16*NV output channels) over a list of
// K segments: segment s contributes sum_k A_s[r][k] * B_s[k][:] for k < len, where row r of A_s is at
// a + r*RS (RS: the row stride, a compile-time constant when it is known, else runtime) and B_s is a
// panel slice: len rows of exactly 16*NV contiguous, 64-byte aligned floats. The accumulators stay in
// registers over all segments; A values arrive as broadcasts. Segments let the convolutions feed taps
// straight from (padded, activated) input rows, so no im2col matrix exists. The epilogue adds a bias,
// applies a folded BatchNorm and a NaN-preserving ReLU, and stores with a mask for a partial last
// panel. tests/test_gemm_kernels.cpp checks every kernel of every set this CPU runs against a naive
// GEMM, and the ctest entries *_isa_* run the primitive tests under each VOLFEAT_CPU_ISA.
//
// The panel width (NV) is the ISA's choice (panel_vectors): weights packed for one set are read by
// the same set, which cannot change within a process.
//
// Beside them, the bf16 kernels (gemm_bf16.hpp: AVX512-BF16, Precision::kBf16) take k-pairs of bf16
// operands on the AVX-512 set's panels; bf16_available() says whether this process can run them. On a
// CPU with AMX, the bf16 GEMMs whose K segments tiles take run on tiles instead (gemm_amx.hpp, the same
// panels); bf16_kernels() says which, chosen once per process as the fp32 set is.
//
// Compiled in every translation unit (the default: header-only) or once. Every kernel variant of every
// set is instantiated through select_kernel's tables, about 16 s of -O3 compile per translation unit
// that runs a conv (Zen 3), the same code each time. A program whose translation units all define
// VOLFEAT_SEPARATE_KERNELS sees only kernel_set()'s declaration; exactly one of its translation units
// also defines VOLFEAT_KERNELS_IMPLEMENTATION before including this header and holds the kernels.
// volfeat's own tests and programs build that way (CMake: VOLFEAT_COMPILE_KERNELS_ONCE, the
// volfeat_kernels library). Mixing the two modes within one program breaks the one-definition rule.
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>

#include "volfeat/backend/cpu/amx_tiles.hpp"
#include "volfeat/backend/cpu/gemm_types.hpp"
#include "volfeat/backend/cpu/isa.hpp"
#include "volfeat/core/error.hpp"

#if defined(VOLFEAT_SEPARATE_KERNELS) && !defined(VOLFEAT_KERNELS_IMPLEMENTATION)
#define VOLFEAT_KERNELS_DECLARED_ONLY 1
#else
#define VOLFEAT_KERNELS_DECLARED_ONLY 0
#include "volfeat/backend/cpu/gemm_amx.hpp"
#include "volfeat/backend/cpu/gemm_avx2.hpp"
#include "volfeat/backend/cpu/gemm_avx512.hpp"
#include "volfeat/backend/cpu/gemm_bf16.hpp"
#include "volfeat/backend/cpu/gemm_generic.hpp"
#endif
#if defined(VOLFEAT_SEPARATE_KERNELS)
#define VOLFEAT_KERNELS_LINKAGE  // one definition, in the implementation's translation unit
#else
#define VOLFEAT_KERNELS_LINKAGE inline
#endif

namespace volfeat::cpu::gemm {

// One instruction set's kernels. Chosen once (kernels()), a plain table of functions.
struct KernelSet {
  CpuIsa isa;
  int (*max_rows)(int nv);                                            // widest R for a panel of nv vectors
  int (*panel_vectors)(Index out_channels);                           // NV of the panels for a layer
  KernelFn (*select)(int nv, Index rs, int rows, Index seglen);       // rows: 1 .. max_rows(nv)
  ActivateFn activate_row;
};

// The kernels of `isa` (whether the CPU runs them is the caller's business: isa_unavailable_reason).
VOLFEAT_KERNELS_LINKAGE const KernelSet& kernel_set(CpuIsa isa);

// The bf16 kernels (gemm_bf16.hpp): the AVX512-BF16 set, and the whole-GEMM functions on AMX tiles
// (gemm_amx.hpp, real and emulated) that take its panels. The panels are the AVX-512 set's
// (max_rows, panel_vectors).
using Bf16RowsFn = void (*)(const Bf16Segment* segs, int nseg, Index rs, int nv, Index rows, float* c, Index ldc,
                            const Epilogue& ep);
struct Bf16KernelSet {
  Bf16KernelFn (*select)(int nv, Index rs, int rows);  // rows: 1 .. max_rows(nv)
  Bf16ConvertFn convert_row;
  Bf16ActivateFn activate_row;
  Bf16WidenActivateFn widen_activate_row;
  Bf16RowsFn amx_rows;           // amx_unavailable_reason() == "" only
  Bf16RowsFn emulated_amx_rows;  // the software model of the same (any CPU that runs the set)
};
// Null where this build has no x86 variants.
VOLFEAT_KERNELS_LINKAGE const Bf16KernelSet* bf16_kernel_set();

#if !VOLFEAT_KERNELS_DECLARED_ONLY
namespace detail {
inline constexpr KernelSet kGenericSet{CpuIsa::kGeneric, [](int nv) { return generic::max_rows(nv); },
                                       [](Index co) { return generic::panel_vectors(co); }, &generic::select_kernel,
                                       &generic::activate_row};
#if VOLFEAT_HAVE_ISA_VARIANTS
inline constexpr KernelSet kAvx2Set{CpuIsa::kAvx2, [](int nv) { return avx2::max_rows(nv); },
                                    [](Index co) { return avx2::panel_vectors(co); }, &avx2::select_kernel,
                                    &avx2::activate_row};
inline constexpr KernelSet kAvx512Set{CpuIsa::kAvx512, [](int nv) { return avx512::max_rows(nv); },
                                      [](Index co) { return avx512::panel_vectors(co); }, &avx512::select_kernel,
                                      &avx512::activate_row};
#endif
}  // namespace detail

VOLFEAT_KERNELS_LINKAGE const KernelSet& kernel_set(CpuIsa isa) {
#if VOLFEAT_HAVE_ISA_VARIANTS
  if (isa == CpuIsa::kAvx512) return detail::kAvx512Set;
  if (isa == CpuIsa::kAvx2) return detail::kAvx2Set;
#else
  (void)isa;
#endif
  return detail::kGenericSet;
}

VOLFEAT_KERNELS_LINKAGE const Bf16KernelSet* bf16_kernel_set() {
#if VOLFEAT_HAVE_ISA_VARIANTS
  static constexpr Bf16KernelSet set{&avx512bf16::select_kernel, &avx512bf16::convert_row, &avx512bf16::activate_row,
                                     &avx512bf16::widen_activate_row,
                                     &amx::gemm_rows<AmxTiles>, &amx::gemm_rows<EmulatedTiles>};
  return &set;
#else
  return nullptr;
#endif
}
#endif  // !VOLFEAT_KERNELS_DECLARED_ONLY

// The process's kernels (cpu_isa()).
inline const KernelSet& kernels() {
  static const KernelSet& set = kernel_set(cpu_isa());
  return set;
}

inline int max_rows(int nv) { return kernels().max_rows(nv); }
inline int panel_vectors(Index out_channels) { return kernels().panel_vectors(out_channels); }

// Splits n rows into the fewest blocks of at most rmax rows, as even as possible (no 1-row tails).
inline int row_blocks(Index n, int rmax) { return int((n + rmax - 1) / rmax); }
inline Index row_block_begin(Index n, int blocks, int b) { return (n * b) / blocks; }

inline KernelFn select_kernel(int nv, Index rs, int rows, Index seglen = 0) {
  return kernels().select(nv, rs, rows, seglen);
}

// C (rows x 16*nv, row r at c + r*ldc) = sum over segments, then the epilogue. Segment pointers
// `a` are for row 0; row r reads a + r*rs. Rows go in near-equal blocks of at most max_rows(nv).
// K is cut into groups of at most `kgroup` steps (segments longer than that are split; shorter
// ones never are, so a uniform length stays uniform): each group's slice of B is small enough to
// stay in L1 while every row block passes over it, and later groups accumulate into C.
inline void gemm_rows(const KernelSet& ks, const Segment* segs, int nseg, Index rs, int nv, Index rows, float* c,
                      Index ldc, Epilogue ep, Index kgroup) {
  if (kgroup <= 0) kgroup = std::numeric_limits<Index>::max() / 2;
  constexpr int kMaxGroup = 128;
  Segment group[kMaxGroup];
  const int rmax = ks.max_rows(nv);
  const int blocks = row_blocks(rows, rmax);
  const Index pw = 16 * nv;
  int s = 0;
  Index done_in_seg = 0;  // k steps of segs[s] already issued
  bool first = true;
  while (first || s < nseg) {
    // Collect the next group.
    int ng = 0;
    Index k = 0;
    while (s < nseg && ng < kMaxGroup && k < kgroup) {
      const Index left = segs[s].len - done_in_seg;
      if (ng > 0 && k + left > kgroup && left <= kgroup) break;  // whole segment into the next group
      const Index take = std::min(left, kgroup - k);
      group[ng++] = {segs[s].a + done_in_seg, segs[s].b + done_in_seg * pw, take};
      k += take;
      done_in_seg += take;
      if (done_in_seg == segs[s].len) ++s, done_in_seg = 0;
    }
    Index uniform = ng > 0 ? group[0].len : 0;
    for (int i = 1; i < ng; ++i)
      if (group[i].len != uniform) uniform = 0;
    Epilogue e = ep;
    e.accumulate = !first;
    e.finish = s >= nseg;
    for (int b = 0; b < blocks; ++b) {
      const Index r0 = row_block_begin(rows, blocks, b), r1 = row_block_begin(rows, blocks, b + 1);
      ks.select(nv, rs, int(r1 - r0), uniform)(group, ng, rs, r0 * rs, c + r0 * ldc, ldc, e);
    }
    first = false;
  }
}

inline void gemm_rows(const Segment* segs, int nseg, Index rs, int nv, Index rows, float* c, Index ldc, Epilogue ep,
                      Index kgroup) {
  gemm_rows(kernels(), segs, nseg, rs, nv, rows, c, ldc, ep, kgroup);
}

// Why this process cannot run the bf16 kernels, or "" when it can: they need AVX512-BF16 and the
// AVX-512 set's panels (cpu_isa() fixes those for the process).
inline std::string bf16_unavailable_reason() {
  if (!bf16_kernel_set()) return "this build has no x86 kernel variants";
  if (!cpu_has_avx512_bf16()) return "this CPU lacks AVX512-BF16";
  if (cpu_isa() != CpuIsa::kAvx512)
    return std::string("VOLFEAT_CPU_ISA=") + isa_name(cpu_isa()) + " chose kernels without bf16";
  return "";
}
inline bool bf16_available() {
  static const bool ok = bf16_unavailable_reason().empty();
  return ok;
}

// Which kernels run the bf16 GEMMs: AMX tiles where the CPU and the kernel allow them (for the GEMMs
// whose segments tiles take, amx_takes; the AVX512-BF16 kernels do the rest), else AVX512-BF16 alone.
// VOLFEAT_BF16_KERNELS=amx|avx512bf16|amx-emulated forces a choice (unset or "auto": the best here);
// amx-emulated runs the tile GEMM's code on the software model of amx_tiles.hpp, slowly, so that its
// blocking is tested on CPUs without AMX. Asking for amx where it cannot run is an error.
enum class Bf16Kernels { kAvx512Bf16, kAmx, kAmxEmulated };

inline const char* bf16_kernels_name(Bf16Kernels k) {
  switch (k) {
    case Bf16Kernels::kAmx: return "amx";
    case Bf16Kernels::kAmxEmulated: return "amx-emulated";
    case Bf16Kernels::kAvx512Bf16: break;
  }
  return "avx512bf16";
}

inline Bf16Kernels parse_bf16_kernels(const std::string& s) {
  if (s == "amx") return Bf16Kernels::kAmx;
  if (s == "avx512bf16") return Bf16Kernels::kAvx512Bf16;
  if (s == "amx-emulated") return Bf16Kernels::kAmxEmulated;
  fail("VOLFEAT_BF16_KERNELS=", s, " is not one of amx, avx512bf16, amx-emulated (or unset/auto for the best here)");
}

namespace detail {
// The choice, or why VOLFEAT_BF16_KERNELS cannot be followed. Made once without throwing: the GEMMs ask
// from inside parallel regions, where an exception would end the process (and a throwing static
// initialiser would leave the other threads waiting on its guard).
struct Bf16Choice {
  Bf16Kernels kernels = Bf16Kernels::kAvx512Bf16;
  std::string problem;
};
inline Bf16Choice choose_bf16_kernels() {
  const char* env = std::getenv("VOLFEAT_BF16_KERNELS");
  const std::string s = env ? env : "";
  Bf16Choice c;
  try {
    if (s.empty() || s == "auto") {
      c.kernels = amx_unavailable_reason().empty() ? Bf16Kernels::kAmx : Bf16Kernels::kAvx512Bf16;
      return c;
    }
    c.kernels = parse_bf16_kernels(s);
    if (c.kernels == Bf16Kernels::kAmx && !amx_unavailable_reason().empty())
      fail("VOLFEAT_BF16_KERNELS=amx but ", amx_unavailable_reason());
  } catch (const Error& e) {
    c = Bf16Choice{Bf16Kernels::kAvx512Bf16, e.what()};
  }
  return c;
}
inline const Bf16Choice& bf16_choice() {
  static const Bf16Choice c = choose_bf16_kernels();
  return c;
}
}  // namespace detail

// The process's choice (bf16_available() only), fixed on first use. An invalid VOLFEAT_BF16_KERNELS
// throws here; the edges ask before any work (DeviceFor<Cpu>::make), the GEMMs never throw.
inline Bf16Kernels bf16_kernels() {
  const detail::Bf16Choice& c = detail::bf16_choice();
  if (!c.problem.empty()) throw Error(c.problem);
  return c.kernels;
}

// Whether the process's bf16 GEMMs run on AMX tiles (or their software model): where they do not, a 3D
// Winograd conv asked for bf16 with fewer than 128 channels on either side runs a float32 tile, F(4x4x4)
// or F(4x6x6), instead of bf16's F(2x2x2) (winograd3d_select.hpp says why).
inline bool bf16_gemms_on_tiles() { return bf16_kernels() != Bf16Kernels::kAvx512Bf16; }

// One line for a run's notes and run.json: what runs --precision bf16 here.
inline std::string bf16_kernels_description() {
  switch (bf16_kernels()) {
    case Bf16Kernels::kAmx:
      return "AMX tiles (tdpbf16ps), AVX512-BF16 for K not a multiple of 32; 3D Winograd convs in bf16 F(2x2x2)";
    case Bf16Kernels::kAmxEmulated:
      return "AMX tiles emulated in software (VOLFEAT_BF16_KERNELS=amx-emulated, a test mode); 3D Winograd convs in "
             "bf16 F(2x2x2)";
    case Bf16Kernels::kAvx512Bf16: break;
  }
  const std::string why = amx_unavailable_reason();
  return std::string("AVX512-BF16 (vdpbf16ps)") + (why.empty() ? "" : "; no AMX: " + why) +
         "; 3D Winograd convs under 128 channels in float32 F(4x4x4), F(4x6x6) on planes that suit it";
}

// gemm_rows in bf16 (bf16_available() only): C (rows x 16*nv) = sum over the segments (each starting
// at an even k of its panel, gemm_bf16.hpp), then the epilogue; all of K in one pass. `which` kernels
// (AMX: amx_unavailable_reason() == "" only); the process's choice below.
inline void gemm_rows_bf16(Bf16Kernels which, const Bf16Segment* segs, int nseg, Index rs, int nv, Index rows, float* c,
                           Index ldc, const Epilogue& ep) {
  const Bf16KernelSet& ks = *bf16_kernel_set();
  if (which != Bf16Kernels::kAvx512Bf16 && amx_takes(segs, nseg)) {
    if (ep.c16) fail("gemm: a bf16 C is the AVX512-BF16 kernels' only, not AMX tiles' (internal error)");
    (which == Bf16Kernels::kAmx ? ks.amx_rows : ks.emulated_amx_rows)(segs, nseg, rs, nv, rows, c, ldc, ep);
    return;
  }
  const int blocks = row_blocks(rows, max_rows(nv));
  Epilogue e = ep;
  for (int b = 0; b < blocks; ++b) {
    const Index r0 = row_block_begin(rows, blocks, b), r1 = row_block_begin(rows, blocks, b + 1);
    if (ep.c16) e.c16 = ep.c16 + r0 * ldc;
    ks.select(nv, rs, int(r1 - r0))(segs, nseg, rs, r0 * rs, ep.c16 ? c : c + r0 * ldc, ldc, e);
  }
}
inline void gemm_rows_bf16(const Bf16Segment* segs, int nseg, Index rs, int nv, Index rows, float* c, Index ldc,
                           const Epilogue& ep) {
  gemm_rows_bf16(detail::bf16_choice().kernels, segs, nseg, rs, nv, rows, c, ldc, ep);
}

// y[i] = bf16(x[i]) for i < n (bf16_available() only).
inline void convert_row_bf16(const float* x, Bf16* y, Index n) { bf16_kernel_set()->convert_row(x, y, n); }
// y[i] = bf16(act(x[i])) (bf16_available() only): activate_row, rounded as convert_row_bf16 rounds.
inline void activate_row_bf16(const float* x, Bf16* y, Index n, const float* scale, const float* shift, bool relu) {
  bf16_kernel_set()->activate_row(x, y, n, scale, shift, relu);
}

// y[i] = bf16(act(x[i])) for bf16 x (bf16_available() only): activate_row_bf16 on the widened values.
inline void activate_row_bf16(const Bf16* x, Bf16* y, Index n, const float* scale, const float* shift, bool relu) {
  bf16_kernel_set()->widen_activate_row(x, y, n, scale, shift, relu);
}

// y[i] = act(x[i]) for i < n with act = optional folded BN, optional ReLU (NaN kept), vectorised.
inline void activate_row(const float* x, float* y, Index n, const float* scale, const float* shift, bool relu) {
  kernels().activate_row(x, y, n, scale, shift, relu);
}

}  // namespace volfeat::cpu::gemm
