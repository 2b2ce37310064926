#pragma once
// The Cpu backend: Eigen storage and GEMM, OpenMP loops. Including this header makes every op
// available as Op<Cpu, float> / Op<Cpu, double>.
#include "volfeat/backend/cpu/add.hpp"
#include "volfeat/backend/cpu/batchnorm3d.hpp"
#include "volfeat/backend/cpu/concat.hpp"
#include "volfeat/backend/cpu/conv3d.hpp"
#include "volfeat/backend/cpu/device_for.hpp"
#include "volfeat/backend/cpu/fused.hpp"
#include "volfeat/backend/cpu/pool3d.hpp"
#include "volfeat/backend/cpu/region_pool.hpp"
#include "volfeat/backend/cpu/winograd3d_select.hpp"
#include "volfeat/backend/cpu_tensor.hpp"
