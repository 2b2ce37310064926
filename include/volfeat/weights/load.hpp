#pragma once
// Network weights from .npz files, for any registered architecture: torchvision exports (2D, a
// plain state_dict, inflated on load) or volfeat's own inflated files (3D), and writing the latter. Every file carries a `volfeat_meta` JSON entry that
// says what it is; volfeat never treats seeded weights as pretrained or the other way round.
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "volfeat/core/sha256.hpp"
#include "volfeat/io/npz.hpp"
#include "volfeat/nn/architectures.hpp"
#include "volfeat/weights/inflate.hpp"

namespace volfeat {

inline StateDict state_dict_from_npz(const NpzMap& arrays, const std::string& origin) {
  StateDict sd;
  sd.origin = origin;
  for (const auto& [key, a] : arrays) {
    if (key == "volfeat_meta") {
      const auto bytes = a.to_vector<uint8_t>();
      sd.meta_json.assign(bytes.begin(), bytes.end());
      continue;
    }
    if (a.dtype != DType::F32 && a.dtype != DType::F64 && a.dtype != DType::F16 && a.dtype != DType::I64)
      fail(origin, ": key ", key, " has dtype ", dtype_name(a.dtype), " (weights must be float16/32/64)");
    sd.params[key] = Param{a.shape, a.to_vector<double>()};
  }
  if (!sd.meta_json.empty() && !nlohmann::json::accept(sd.meta_json))
    fail(origin, ": volfeat_meta is not valid JSON");
  return sd;
}

inline StateDict read_state_dict(const std::string& path) { return state_dict_from_npz(read_npz(path), path); }

inline nlohmann::json state_dict_meta(const StateDict& sd) {
  return sd.meta_json.empty() ? nlohmann::json::object() : nlohmann::json::parse(sd.meta_json);
}

// float32 tensors under the same keys, plus `volfeat_meta`.
inline void write_state_dict(const std::string& path, const StateDict& sd) {
  NpzMap arrays;
  for (const auto& [key, p] : sd.params) {
    const std::vector<float> v(p.values.begin(), p.values.end());
    arrays.emplace(key, NpyArray::from(p.shape, v.data()));
  }
  const std::vector<uint8_t> meta(sd.meta_json.begin(), sd.meta_json.end());
  arrays.emplace("volfeat_meta", NpyArray::from({int64_t(meta.size())}, meta.data()));
  write_npz(path, arrays);
}

// What the weights are, for every output: "pretrained" (from a real checkpoint), "seeded-init"
// (torchvision's random initialisation, exported) or "random" (volfeat's seeded init).
inline std::string weights_kind(const StateDict& sd) {
  const auto meta = state_dict_meta(sd);
  if (meta.contains("weights_kind")) return meta["weights_kind"].get<std::string>();
  if (meta.contains("source")) return meta["source"].get<std::string>();
  return "unknown (no volfeat_meta entry)";
}

// A 2D export inflated with `opt`, with its provenance in meta_json.
inline StateDict inflate_with_meta(const StateDict& sd2d, const InflateOptions& opt, const std::string& source_sha256) {
  StateDict sd3 = inflate_state_dict(sd2d, opt);
  nlohmann::json meta = nlohmann::json::object();
  meta["format"] = "volfeat-weights";
  meta["dims"] = 3;
  meta["arch"] = detect_arch(sd2d);
  meta["scheme"] = opt.scheme;
  meta["axis"] = std::string(1, "DHW"[axis_index(opt.axis)]);
  meta["stem"] = opt.stem;
  if (opt.scheme == "random" || opt.scheme == "shuffled") meta["seed"] = opt.seed;
  meta["source_sha256"] = source_sha256;
  const std::string kind = weights_kind(sd2d);
  meta["weights_kind"] = opt.scheme == "random" ? "random" : kind;
  meta["source_meta"] = state_dict_meta(sd2d);
  sd3.meta_json = meta.dump();
  return sd3;
}

// Checks beyond the shapes: the stem's channel count, finite values, and a volfeat_meta that agrees
// with the tensors (a 3D file that says densenet121 but holds 169's layers was assembled wrongly).
inline void check_weights_content(const StateDict& sd, const std::string& arch, int dims) {
  const std::string& key = stem_key(sd);
  const Shape& stem = sd.at(key).shape;
  if (stem[1] != 1 && stem[1] != 3)
    fail(sd.origin, ": ", key, " has shape ", shape_string(stem), ": the stem takes ", stem[1],
         " input channels, expected 3 (RGB) or 1 (gray)");
  for (const auto& [k, p] : sd.params) {
    int64_t bad = 0;
    for (double v : p.values) bad += std::isfinite(v) ? 0 : 1;
    if (bad)
      fail(sd.origin, ": key ", k, " holds ", bad, " NaN or infinite value", bad == 1 ? "" : "s", " (of ",
           p.values.size(), "); the weights are corrupt");
  }
  const nlohmann::json meta = state_dict_meta(sd);
  if (meta.is_object() && meta.contains("arch") && meta["arch"].is_string() && meta["arch"].get<std::string>() != arch)
    fail(sd.origin, ": volfeat_meta says ", meta["arch"].get<std::string>(), " but the tensors are ", arch, "'s (",
         arch_family(arch).describe(arch), ")");
  if (meta.is_object() && meta.contains("dims") && meta["dims"].is_number_integer() && meta["dims"].get<int>() != dims)
    fail(sd.origin, ": volfeat_meta says dims ", meta["dims"].get<int>(), " but the conv weights are ", dims, "D");
}

// The one entry point the CLI uses: a 3D file as it is, a 2D export (a plain torchvision
// state_dict, architecture detected from its keys) inflated on load.
inline StateDict load_weights(const std::string& path, const InflateOptions& opt) {
  StateDict sd = read_state_dict(path);
  const int dims = conv_spatial_dims(sd);
  const Graph g = graph_of(sd);
  check_weights_content(sd, g.arch(), dims);
  if (dims == 3) return sd;
  return inflate_with_meta(sd, opt, sha256_file(path));
}

// volfeat's seeded random network, when no weights are given.
inline StateDict seeded_random_weights(const std::string& arch, uint64_t seed, int64_t stem_in = 1) {
  StateDict sd = random_state_dict(arch, seed, stem_in);
  nlohmann::json meta{{"format", "volfeat-weights"}, {"dims", 3}, {"arch", arch}, {"scheme", "random"},
                      {"seed", seed}, {"weights_kind", "random"}};
  sd.meta_json = meta.dump();
  return sd;
}

}  // namespace volfeat
