#pragma once
// The backend the volfeat CLI is compiled for. experiments/CMakeLists.txt defines
// VOLFEAT_CLI_BACKEND_THRUST for volfeat-thrust-omp (g++, Thrust's OpenMP device system) and
// volfeat-cuda (nvcc); plain `volfeat` is the Cpu backend. Nothing else in the CLI differs.
#ifdef VOLFEAT_CLI_BACKEND_THRUST
#include "volfeat/backend/thrust.hpp"
namespace volfeat::cli {
using CliBackend = Thrust;
}
#else
#include "volfeat/backend/cpu.hpp"
namespace volfeat::cli {
using CliBackend = Cpu;
}
#endif
