#pragma once
// The Thrust tests' guard for the CUDA build: without a usable GPU they exit 77 (ctest: skipped)
// and say so, instead of failing on the first allocation.
#include <cstdlib>
#include <iostream>

#include "volfeat/backend/thrust.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#include <cuda_runtime_api.h>
#endif

namespace volfeat::test {

struct RequireThrustDevice {
  RequireThrustDevice() {
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
      std::cout << "SKIP: this is the CUDA build of the Thrust tests and there is no usable GPU ("
                << (e != cudaSuccess ? cudaGetErrorString(e) : "no device") << ")" << std::endl;
      std::exit(77);
    }
    cudaDeviceProp p{};
    cudaGetDeviceProperties(&p, 0);
    std::cout << "Thrust backend on CUDA device 0: " << p.name << " (sm_" << p.major << p.minor << ")" << std::endl;
#endif
  }
};

}  // namespace volfeat::test
