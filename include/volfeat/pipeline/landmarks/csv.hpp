#pragma once
// The landmark experiment's CSV outputs: one row per arch x scheme x layer x patch x landmark, and the
// summary per arch x scheme x layer x patch (errors before/after, the paired t-test).
#include <cmath>
#include <sstream>
#include <string>

#include "volfeat/nn/selectors.hpp"
#include "volfeat/pipeline/landmarks/matching.hpp"

namespace volfeat {

namespace detail::lm {
inline std::string num(double v, int precision = 6) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream os;
  os.precision(precision);
  os << v;
  return os.str();
}
}  // namespace detail::lm

// One row per arch x scheme x layer x patch x landmark.
inline std::string landmarks_csv(const LandmarkExperiment& ex) {
  using detail::lm::num;
  std::ostringstream os;
  os << "arch,scheme,layer,module,patch,landmark,region,label,kind,template_d,template_h,template_w,template_x,template_y,"
        "template_z,true_x,true_y,true_z,match_d,match_h,match_w,match_x,match_y,match_z,error_before_mm,"
        "error_after_mm,grid_floor_mm,candidates,feature_distance,centre_feature_distance\n";
  for (const auto& r : ex.rows) {
    const Landmark& l = r.landmark;
    os << r.arch << ',' << r.scheme << ',' << r.layer << ',' << short_module_name(r.module) << ',' << r.patch << ',' << l.name << ',' << l.region << ','
       << l.label << ',' << l.kind << ',' << l.voxel[0] << ',' << l.voxel[1] << ',' << l.voxel[2];
    for (double v : l.world) os << ',' << num(v, 10);
    for (double v : l.true_world) os << ',' << num(v, 10);
    os << ',' << r.match[0] << ',' << r.match[1] << ',' << r.match[2];
    for (double v : r.match_world) os << ',' << num(v, 10);
    os << ',' << num(r.error_before, 10) << ',' << num(r.error_after, 10) << ',' << num(r.floor, 10) << ','
       << r.candidates << ',' << num(r.feature_distance, 10) << ',' << num(r.centre_distance, 10) << '\n';
  }
  return os.str();
}

// One row per arch x scheme x layer x patch: errors before/after (mean, sd), the paired t-test, n.
inline std::string landmarks_summary_csv(const LandmarkExperiment& ex) {
  using detail::lm::num;
  std::ostringstream os;
  os << "arch,scheme,layer,module,patch,n,before_mean_mm,before_sd_mm,after_mean_mm,after_sd_mm,mean_reduction_mm,"
        "t,df,p,grid_floor_mean_mm,seconds_scheme_patch,note\n";
  for (const auto& s : ex.summary) {
    os << s.arch << ',' << s.scheme << ',' << s.layer << ',' << short_module_name(s.module) << ',' << s.patch << ',' << s.n << ','
       << num(s.before_mean, 10) << ',' << num(s.before_sd, 10) << ',' << num(s.after_mean, 10) << ','
       << num(s.after_sd, 10) << ',' << num(s.test.mean_diff, 10) << ',' << num(s.test.t, 10) << ','
       << num(s.test.df) << ',' << num(s.test.p, 10) << ',' << num(s.floor_mean, 10) << ',' << num(s.seconds, 4)
       << ',' << s.note << '\n';
  }
  return os.str();
}

}  // namespace volfeat
