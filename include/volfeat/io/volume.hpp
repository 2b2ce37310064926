#pragma once
// A voxel grid and a volume on it, in the axis order every volfeat kernel uses.
//
// Axis convention (the one ITK/SimpleITK's GetArrayFromImage uses): a NIfTI array indexed [i,j,k]
// is held as (D,H,W) = (k,j,i), D being the slice axis. Because NIfTI stores i fastest, the
// row-major (D,H,W) buffer is byte-for-byte the on-disk voxel order, so reading needs no transpose.
#include <array>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"

namespace volfeat {

struct Grid {
  // (D,H,W) = NIfTI (nk, nj, ni).
  std::array<int64_t, 3> dims{{0, 0, 0}};
  // mm along (D,H,W) = (pixdim[3], pixdim[2], pixdim[1]).
  std::array<double, 3> spacing{{1.0, 1.0, 1.0}};
  // NIfTI voxel (i,j,k,1) -> world mm (sform if sform_code > 0, else qform, as nibabel's
  // get_best_affine). Kept in NIfTI's (i,j,k) column order so it can be written back unchanged.
  std::array<std::array<double, 4>, 4> affine{{{{1, 0, 0, 0}}, {{0, 1, 0, 0}}, {{0, 0, 1, 0}}, {{0, 0, 0, 1}}}};

  int64_t voxels() const { return dims[0] * dims[1] * dims[2]; }
  // Row-major (D,H,W) offset; equals NIfTI's i + ni*(j + nj*k) with (i,j,k) = (w,h,d).
  int64_t index(int64_t d, int64_t h, int64_t w) const { return (d * dims[1] + h) * dims[2] + w; }
};

template <class T>
struct Volume {
  Grid grid;
  // Row-major (D,H,W): voxel (d,h,w) at (d*H + h)*W + w.
  std::vector<T> data;

  T& at(int64_t d, int64_t h, int64_t w) { return data[static_cast<size_t>(grid.index(d, h, w))]; }
  const T& at(int64_t d, int64_t h, int64_t w) const { return data[static_cast<size_t>(grid.index(d, h, w))]; }
};

// An axis-aligned grid: affine = diag(spacing) in (i,j,k) order plus a translation, which is what a
// synthetic volume or a resampled crop needs. origin is the world position of voxel (0,0,0), in (x,y,z).
inline Grid make_grid(const std::array<int64_t, 3>& dims_dhw, const std::array<double, 3>& spacing_dhw,
                      const std::array<double, 3>& origin_xyz = {{0.0, 0.0, 0.0}}) {
  Grid g;
  g.dims = dims_dhw;
  g.spacing = spacing_dhw;
  g.affine = {{{{spacing_dhw[2], 0, 0, origin_xyz[0]}},
               {{0, spacing_dhw[1], 0, origin_xyz[1]}},
               {{0, 0, spacing_dhw[0], origin_xyz[2]}},
               {{0, 0, 0, 1}}}};
  return g;
}

// "122x101x112 (i,j,k) spacing 3x3x3 mm, affine [[...],[...],[...]]": written in NIfTI's (i,j,k)
// order because that is what users see in nibabel, ITK-SNAP and fslinfo when they check a file.
inline std::string describe(const Grid& g) {
  std::ostringstream os;
  os.precision(6);
  os << g.dims[2] << 'x' << g.dims[1] << 'x' << g.dims[0] << " (i,j,k) spacing " << g.spacing[2] << 'x'
     << g.spacing[1] << 'x' << g.spacing[0] << " mm, affine [";
  for (int r = 0; r < 3; ++r) {
    os << (r ? ",[" : "[");
    for (int c = 0; c < 4; ++c) os << (c ? "," : "") << g.affine[r][c];
    os << ']';
  }
  os << ']';
  return os.str();
}

// What first differs between grids a and b ("dimensions differ", "spacing differs", "origin differs",
// "orientation or voxel axes differ"), or "" when they describe the same voxels in space. A CT and its
// label map that differ only by float round-off in the header are still the same grid, hence the
// tolerance (mm for spacing and translation, mm per voxel for the direction columns).
inline std::string grid_difference(const Grid& a, const Grid& b, double tol_mm = 1e-3) {
  if (a.dims != b.dims) return "dimensions differ";
  for (int i = 0; i < 3; ++i)
    if (!(std::fabs(a.spacing[i] - b.spacing[i]) <= tol_mm)) return "spacing differs";
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      if (!(std::fabs(a.affine[r][c] - b.affine[r][c]) <= tol_mm))
        return c == 3 ? "origin differs" : "orientation or voxel axes differ";
  return "";
}

// Throws, naming both inputs and both grids, unless a and b describe the same voxels in space.
inline void require_same_grid(const Grid& a, const std::string& a_name, const Grid& b, const std::string& b_name,
                              double tol_mm = 1e-3) {
  const std::string what = grid_difference(a, b, tol_mm);
  if (!what.empty())
    fail("grid mismatch (", what, "): ", a_name, " is ", describe(a), " but ", b_name, " is ", describe(b));
}

}  // namespace volfeat
