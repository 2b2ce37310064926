#pragma once
// The text forms of `volfeat landmarks`' options: --rotate, --translate (-> RigidTransform) and the
// comma lists of integers (--patch). The library (pipeline/landmarks/) takes numbers.
#include <cmath>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/pipeline/landmarks/geometry.hpp"

namespace volfeat::cli {

// A comma list of finite numbers; `what` names the option in the error.
inline std::vector<double> parse_number_list(const std::string& s, const std::string& what) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    const std::string item = s.substr(start, end - start);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || !std::isfinite(v)) fail(what, " '", s, "': '", item, "' is not a number");
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

// --rotate and --translate, parsed; the transform itself needs the template grid's centre.
struct TransformArgs {
  std::vector<double> degrees;  // 1 angle about (1,1,1), or 3 Euler angles about x, y, z
  Vec3 translation = Vec3::Zero();
  std::string rotate, translate;  // as given, quoted by the transform's text
};

// --rotate DEG: DEG degrees about the oblique world axis (1,1,1)/sqrt(3); --rotate AX,AY,AZ: Euler angles
// in degrees about world x, y, z, applied in that order. --translate TX,TY,TZ in world mm.
inline TransformArgs parse_transform_args(const std::string& rotate, const std::string& translate) {
  TransformArgs t;
  t.rotate = rotate, t.translate = translate;
  t.degrees = parse_number_list(rotate, "--rotate");
  if (t.degrees.size() != 1 && t.degrees.size() != 3)
    fail("--rotate '", rotate, "': expected DEG (about the axis (1,1,1)) or AX,AY,AZ (Euler angles about x, y, z)");
  const auto tr = parse_number_list(translate, "--translate");
  if (tr.size() != 3) fail("--translate '", translate, "': expected TX,TY,TZ in mm");
  t.translation = Vec3{tr[0], tr[1], tr[2]};
  return t;
}

// The transform about `centre` (the template grid's centre), with its text for the outputs.
inline RigidTransform make_rigid_transform(const TransformArgs& a, const Vec3& centre) {
  RigidTransform t = rigid_transform(a.degrees, a.translation, centre);
  std::ostringstream os;
  os << "rotate " << (a.degrees.size() == 1 ? a.rotate + " deg about (1,1,1)" : a.rotate + " deg about x,y,z")
     << " around (" << centre[0] << "," << centre[1] << "," << centre[2] << ") mm, then translate " << a.translate << " mm";
  t.text = os.str();
  return t;
}

inline RigidTransform parse_rigid_transform(const std::string& rotate, const std::string& translate, const Vec3& centre) {
  return make_rigid_transform(parse_transform_args(rotate, translate), centre);
}

}  // namespace volfeat::cli
