#pragma once
// A label mask on the CT's own voxel grid, stored with its axes in another order or direction (an LAS
// export of an LPS CT, a [k,j,i] array saved as [i,j,k]), holds the same voxels at the same places:
// remapping its indices puts it on the CT's grid with no interpolation, so no label moves, merges or
// appears. Any other difference (spacing, origin, field of view, an oblique rotation) would need
// resampling, which volfeat never does implicitly: that stays an error. The CT is never reoriented,
// so every output describes the CT's grid.
//
// Axes here are NIfTI's (i,j,k) = 0,1,2, the order affines are kept in; a Volume holds them as
// (D,H,W) = (k,j,i) (io/volume.hpp).
#include <array>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/io/volume.hpp"

namespace volfeat {

// How far (mm, per affine entry) two affines may differ and still be one grid in another axis order:
// float32 header round-off, several orders of magnitude below any voxel size.
inline constexpr double kReorientToleranceMm = 1e-4;

// CT axis a (0,1,2 = i,j,k) runs along the mask's axis axis[a], reversed where flip[a].
struct AxisReorientation {
  std::array<int, 3> axis{{0, 1, 2}};
  std::array<bool, 3> flip{{false, false, false}};
  std::string from, to;  // orientation codes of the mask's and the CT's grid, e.g. "LAS", "LPS"

  bool identity() const { return axis == std::array<int, 3>{{0, 1, 2}} && !flip[0] && !flip[1] && !flip[2]; }
  // The mask's axis under each CT axis, "-i" where reversed: ["-i","j","k"].
  std::vector<std::string> axes() const {
    std::vector<std::string> out;
    for (int a = 0; a < 3; ++a) out.push_back(std::string(flip[a] ? "-" : "") + "ijk"[axis[a]]);
    return out;
  }
};

// The world direction each of the affine's (i,j,k) columns points to most, RAS+ as NIfTI: +x = R, +y = A,
// +z = S ("RAS", "LPS", "ARS"...). For the axis-aligned grids a reorientation relates, this is nibabel's
// aff2axcodes.
inline std::string orientation_code(const Grid& g) {
  std::string code;
  for (int c = 0; c < 3; ++c) {
    int best = 0;
    for (int r = 1; r < 3; ++r)
      if (std::fabs(g.affine[r][c]) > std::fabs(g.affine[best][c])) best = r;
    code += g.affine[best][c] >= 0 ? "RAS"[best] : "LPI"[best];
  }
  return code;
}

namespace detail {
// (i,j,k) order of a Grid's (D,H,W) arrays.
inline std::array<int64_t, 3> dims_ijk(const Grid& g) { return {{g.dims[2], g.dims[1], g.dims[0]}}; }
inline std::array<double, 3> spacing_ijk(const Grid& g) { return {{g.spacing[2], g.spacing[1], g.spacing[0]}}; }
}  // namespace detail

// The signed axis permutation that maps `source`'s voxels onto `target`'s, if one does: CT voxel c is
// source voxel m with m[axis[a]] = flip[a] ? n[a]-1-c[a] : c[a]. That holds for every voxel exactly
// when each target column equals the source's column axis[a] (negated where flipped), dims and spacing
// follow the permutation, and the target's origin is the source's origin moved to the far end of every
// reversed axis. Every affine entry must agree within tol_mm. The identity is a valid answer.
inline std::optional<AxisReorientation> find_axis_reorientation(const Grid& target, const Grid& source,
                                                                double tol_mm = kReorientToleranceMm) {
  const auto tn = detail::dims_ijk(target), sn = detail::dims_ijk(source);
  const auto ts = detail::spacing_ijk(target), ss = detail::spacing_ijk(source);
  const auto& ta = target.affine;
  const auto& sa = source.affine;
  static constexpr int kPermutations[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  for (const auto& p : kPermutations)
    for (int signs = 0; signs < 8; ++signs) {
      AxisReorientation r;
      bool match = true;
      std::array<double, 3> origin{{sa[0][3], sa[1][3], sa[2][3]}};
      for (int a = 0; a < 3 && match; ++a) {
        const int b = p[a];
        const bool flip = (signs >> a) & 1;
        r.axis[a] = b;
        r.flip[a] = flip;
        match = tn[a] == sn[b] && std::fabs(ts[a] - ss[b]) <= tol_mm;
        for (int row = 0; row < 3 && match; ++row)
          match = std::fabs(ta[row][a] - (flip ? -sa[row][b] : sa[row][b])) <= tol_mm;
        if (flip)
          for (int row = 0; row < 3; ++row) origin[size_t(row)] += sa[row][b] * double(sn[b] - 1);
      }
      for (int row = 0; row < 3 && match; ++row) match = std::fabs(ta[row][3] - origin[size_t(row)]) <= tol_mm;
      if (!match) continue;
      r.from = orientation_code(source);
      r.to = orientation_code(target);
      return r;
    }
  return std::nullopt;
}

// `source`'s voxels on `target`, by index remapping only (r from find_axis_reorientation(target, source)).
template <class T>
Volume<T> reorient_volume(const Volume<T>& source, const Grid& target, const AxisReorientation& r) {
  const auto n = detail::dims_ijk(target), sn = detail::dims_ijk(source.grid);
  const std::array<int64_t, 3> source_stride{{1, sn[0], sn[0] * sn[1]}};  // NIfTI order: i fastest
  if (int64_t(source.data.size()) != source.grid.voxels())
    fail("reorient_volume: the source holds ", source.data.size(), " values for ", source.grid.voxels(), " voxels");
  std::array<int64_t, 3> step{};
  int64_t start = 0;
  bool seen[3] = {false, false, false};
  for (int a = 0; a < 3; ++a) {
    const int b = r.axis[a];
    if (b < 0 || b > 2 || seen[b])
      fail("reorient_volume: axes ", r.axis[0], ",", r.axis[1], ",", r.axis[2], " are not a permutation");
    seen[b] = true;
    if (n[a] != sn[b])
      fail("reorient_volume: axis ", "ijk"[a], " has ", n[a], " voxels but the source's axis ", "ijk"[b], " has ",
           sn[b]);
    step[a] = r.flip[a] ? -source_stride[b] : source_stride[b];
    if (r.flip[a]) start += (n[a] - 1) * source_stride[b];
  }
  Volume<T> out{target, std::vector<T>(size_t(target.voxels()))};
  T* o = out.data.data();
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t j = 0; j < n[1]; ++j) {
      const T* s = source.data.data() + (start + k * step[2] + j * step[1]);
      for (int64_t i = 0; i < n[0]; ++i) *o++ = s[i * step[0]];
    }
  return out;
}

// Puts the mask on the CT's grid: nothing to do when the grids agree (io/volume.hpp's tolerance),
// otherwise a lossless reorientation when one exists (returned; mask.grid becomes exactly the CT's),
// otherwise one error line naming both files and printing both grids.
inline std::optional<AxisReorientation> conform_mask_to_grid(const Grid& ct, const std::string& ct_name,
                                                             Volume<int32_t>& mask, const std::string& mask_name) {
  const std::string what = grid_difference(ct, mask.grid);
  if (what.empty()) return std::nullopt;
  std::optional<AxisReorientation> r = find_axis_reorientation(ct, mask.grid);
  if (!r)
    fail("grid mismatch (", what, "): ", ct_name, " is ", describe(ct), " but ", mask_name, " is ", describe(mask.grid),
         " (only a reordering or reversal of the CT's own voxel axes is reoriented; resample the mask onto the CT's "
         "grid)");
  mask = reorient_volume(mask, ct, *r);
  return r;
}

// The one stderr line a reorientation gets (ASCII, like every other line volfeat prints).
inline std::string reorientation_note(const AxisReorientation& r, const std::string& mask_name) {
  const auto ax = r.axes();
  return mask_name + ": mask reoriented " + r.from + " -> " + r.to +
         " to the CT's grid (lossless: CT (i,j,k) = mask (" + ax[0] + "," + ax[1] + "," + ax[2] + "))";
}

// run.json's "mask_reorientation": null when the mask was on the CT's grid as stored.
inline nlohmann::json reorientation_json(const std::optional<AxisReorientation>& r) {
  if (!r) return nullptr;
  return {{"from", r->from}, {"to", r->to}, {"ct_axes_from_mask_axes", r->axes()}, {"permutation", r->axis},
          {"flip", r->flip}};
}

}  // namespace volfeat
