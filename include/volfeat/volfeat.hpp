#pragma once
// Everything, on the Cpu backend.
#include "volfeat/backend/cpu.hpp"
#include "volfeat/nn/network.hpp"
#include "volfeat/nn/selectors.hpp"
#include "volfeat/nn/taps.hpp"
#include "volfeat/weights/inflate.hpp"
