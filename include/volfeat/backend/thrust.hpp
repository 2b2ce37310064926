#pragma once
// The Thrust backend: every op as Op<Thrust, float> / Op<Thrust, double>, on the device system the
// translation unit is compiled for (CUDA under nvcc; OpenMP with g++ and
// -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP). CMake: link volfeat::thrust_omp or
// volfeat::cuda (options VOLFEAT_WITH_THRUST_OMP / VOLFEAT_WITH_CUDA). Choosing it changes only the
// backend type: Network<Thrust, float> instead of Network<Cpu, float>; feed it device data
// (from_host(Thrust{}, dims, host_ptr)).
#include "volfeat/backend/thrust/add.hpp"
#include "volfeat/backend/thrust/batchnorm3d.hpp"
#include "volfeat/backend/thrust/concat.hpp"
#include "volfeat/backend/thrust/conv3d.hpp"
#include "volfeat/backend/thrust/device_for.hpp"
#include "volfeat/backend/thrust/fused.hpp"
#include "volfeat/backend/thrust/pool3d.hpp"
#include "volfeat/backend/thrust/region_pool.hpp"
#include "volfeat/backend/thrust/tensor.hpp"
