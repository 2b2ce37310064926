#pragma once
// The Cpu convs' float instances compiled once per program instead of in each translation unit.
//
// volfeat is header-only: every translation unit that runs a network instantiates the same conv code,
// and its -O3 compile is most of a test's build. A program built with VOLFEAT_SEPARATE_KERNELS (volfeat's
// own tests and programs: CMake's VOLFEAT_COMPILE_KERNELS_ONCE, the volfeat_kernels library; see
// gemm_kernels.hpp) takes them from its one VOLFEAT_INSTANCES_IMPLEMENTATION unit (the GEMM kernels
// themselves are in another, VOLFEAT_KERNELS_IMPLEMENTATION's). Each header lists its
// heavy float instances under
//
//   #ifdef VOLFEAT_INSTANCE_ONCE
//   VOLFEAT_INSTANCE_ONCE void Conv3d<Cpu, float>::rows_fast(const ViewRows&, /* ... */) const;
//   #endif
//
// which reads "extern template" (an explicit instantiation declaration: this unit does not instantiate
// it) in the program's units and "template" (the explicit instantiation) in the implementation unit. The
// members listed are defined outside their class and not inline, so the declaration binds GCC and Clang.
// Header-only users (no VOLFEAT_SEPARATE_KERNELS) see nothing of this.
#if defined(VOLFEAT_INSTANCES_IMPLEMENTATION)
#define VOLFEAT_INSTANCE_ONCE template
#elif defined(VOLFEAT_SEPARATE_KERNELS)
#define VOLFEAT_INSTANCE_ONCE extern template
#endif
