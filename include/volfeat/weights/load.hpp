#pragma once
// Network weights from .npz files, for any registered architecture: torchvision exports (2D, a
// plain state_dict, inflated on load) or volfeat's own inflated files (3D), and writing the latter. Every file carries a `volfeat_meta` JSON entry that
// says what it is; volfeat never treats seeded weights as pretrained or the other way round.
#include <cmath>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <string>

#include "volfeat/core/sha256.hpp"
#include "volfeat/io/mapped_file.hpp"
#include "volfeat/io/npz.hpp"
#include "volfeat/nn/architectures.hpp"
#include "volfeat/weights/inflate.hpp"

namespace volfeat {

namespace detail {
inline void check_weight_dtype(const std::string& origin, const std::string& key, DType t);
}

inline StateDict state_dict_from_npz(const NpzMap& arrays, const std::string& origin) {
  StateDict sd;
  sd.origin = origin;
  for (const auto& [key, a] : arrays) {
    if (key == "volfeat_meta") {
      const auto bytes = a.to_vector<uint8_t>();
      sd.meta_json.assign(bytes.begin(), bytes.end());
      continue;
    }
    detail::check_weight_dtype(origin, key, a.dtype);
    sd.params[key] = Param{a.shape, a.to_vector<float>()};
  }
  if (!sd.meta_json.empty() && !nlohmann::json::accept(sd.meta_json))
    fail(origin, ": volfeat_meta is not valid JSON");
  return sd;
}

namespace detail {
inline void check_weight_dtype(const std::string& origin, const std::string& key, DType t) {
  if (t != DType::F32 && t != DType::F64 && t != DType::F16 && t != DType::I64)
    fail(origin, ": key ", key, " has dtype ", dtype_name(t), " (weights must be float16/32/64)");
}

// Whether `key` is outside the feature extractor (classifier / fc head, BN step counters) for the family
// whose stem key the archive holds; false for every key when it holds none (the checks say why later).
// (Anything wrong with the archive is left to visit_npz, which names it first as it always has.)
inline std::function<bool(const std::string&)> head_filter(const unsigned char* p, size_t n, const std::string& origin) {
  const std::function<bool(const std::string&)> none = [](const std::string&) { return false; };
  std::vector<std::string> names;
  try {
    const ZipReader zip(p, n, origin);
    for (const ZipMember& m : zip.members()) names.push_back(m.name);
  } catch (const Error&) {
    return none;
  }
  for (const ArchFamily& f : arch_families())
    for (const std::string& name : names)
      if (name == f.stem_key + ".npy") {
        const ArchFamily* family = &f;  // the registry's (static) entry, not the loop variable
        return [family](const std::string& key) { return is_ignorable_key(*family, key); };
      }
  return none;
}
}  // namespace detail

// An .npz's tensors, converted from the file's bytes straight into the values (the file is mapped: no
// copy of it is made). skip_head: the head tensors of the detected family (a VGG export's 0.5 GB
// classifier) keep their shapes but are not read (values empty, CRC unchecked): what the network never
// uses costs nothing.
namespace detail {
// read_state_dict, and with `in_place` a 2D export's conv kernels (4-D) that are stored float32 in C order
// are not copied: they stay in the mapped file (Param::in_place, read at any alignment; CRC checked all
// the same), for a deferred inflation that computes each 3D kernel from them (DenseNet-121's export:
// 32 MB that a fresh process no longer copies). Everything else is read into values as before.
inline StateDict read_state_dict(const std::string& path, bool skip_head, bool in_place) {
  const auto file = std::make_shared<const MappedFile>(path);
  const unsigned char* const begin = file->data();
  const unsigned char* const end = begin + file->size();
  StateDict sd;
  sd.origin = path;
  const auto head = skip_head ? detail::head_filter(begin, file->size(), path)
                              : std::function<bool(const std::string&)>([](const std::string&) { return false; });
  visit_npz(begin, file->size(), path, true, [&](const NpzMember& m, auto read) {
    const NpyHeader& h = m.header;
    if (m.key == "volfeat_meta") {
      const auto bytes = volfeat::detail::npy_values<uint8_t>(h.dtype, h.shape, h.fortran_order, read(), h.data_bytes, m.where);
      sd.meta_json.assign(bytes.begin(), bytes.end());
      return;
    }
    detail::check_weight_dtype(path, m.key, h.dtype);
    Param& param = sd.params[m.key];
    param.shape = h.shape;
    if (head(m.key)) return;
    const unsigned char* data = read();
    // Stored (the bytes lie in the mapping, not in an inflated copy) and sized right.
    if (in_place && h.shape.size() == 4 && h.dtype == DType::F32 && !h.fortran_order && data >= begin &&
        data + h.data_bytes <= end && h.data_bytes == size_t(element_count(h.shape)) * sizeof(float)) {
      param.in_place = std::shared_ptr<const unsigned char>(file, data);
      return;
    }
    param.values = volfeat::detail::npy_values<float>(h.dtype, h.shape, h.fortran_order, data, h.data_bytes, m.where);
  });
  if (!sd.meta_json.empty() && !nlohmann::json::accept(sd.meta_json)) fail(path, ": volfeat_meta is not valid JSON");
  return sd;
}
}  // namespace detail

inline StateDict read_state_dict(const std::string& path, bool skip_head = false) {
  return detail::read_state_dict(path, skip_head, false);
}

inline nlohmann::json state_dict_meta(const StateDict& sd) {
  return sd.meta_json.empty() ? nlohmann::json::object() : nlohmann::json::parse(sd.meta_json);
}

// float32 tensors under the same keys, plus `volfeat_meta`.
inline void write_state_dict(const std::string& path, const StateDict& sd) {
  NpzMap arrays;
  for (const auto& [key, p] : sd.params) arrays.emplace(key, NpyArray::from(p.shape, p.values.data()));
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

// sd3 (sd2d inflated with `opt`) with its provenance in meta_json.
inline StateDict with_inflation_meta(StateDict sd3, const StateDict& sd2d, const InflateOptions& opt,
                                     const std::string& source_sha256) {
  nlohmann::json meta = nlohmann::json::object();
  meta["format"] = "volfeat-weights";
  meta["dims"] = 3;
  meta["arch"] = detect_arch(sd2d);
  meta["scheme"] = opt.scheme;
  meta["axis"] = std::string(1, "DHW"[axis_index(opt.axis)]);
  meta["stem"] = stem_rule_name(opt.stem);
  if (opt.scheme == "random" || opt.scheme == "shuffled") meta["seed"] = opt.seed;
  if (opt.scheme == "random") meta["generator"] = kSeededNormalGenerator;
  meta["source_sha256"] = source_sha256;
  const std::string kind = weights_kind(sd2d);
  meta["weights_kind"] = opt.scheme == "random" ? "random" : kind;
  meta["source_meta"] = state_dict_meta(sd2d);
  sd3.meta_json = meta.dump();
  return sd3;
}

// A 2D export inflated with `opt`, with its provenance in meta_json.
inline StateDict inflate_with_meta(const StateDict& sd2d, const InflateOptions& opt, const std::string& source_sha256) {
  return with_inflation_meta(inflate_state_dict(sd2d, opt), sd2d, opt, source_sha256);
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
    const size_t n = p.size();  // (a structured binding is not captured: C++17)
    p.with_values([&bad, n](auto v) {
      for (size_t i = 0; i < n; ++i) bad += std::isfinite(v[i]) ? 0 : 1;
    });
    if (bad)
      fail(sd.origin, ": key ", k, " holds ", bad, " NaN or infinite value", bad == 1 ? "" : "s", " (of ", n,
           "); the weights are corrupt");
  }
  const nlohmann::json meta = state_dict_meta(sd);
  if (meta.is_object() && meta.contains("arch") && meta["arch"].is_string() && meta["arch"].get<std::string>() != arch)
    fail(sd.origin, ": volfeat_meta says ", meta["arch"].get<std::string>(), " but the tensors are ", arch, "'s (",
         arch_family(arch).describe(arch), ")");
  if (meta.is_object() && meta.contains("dims") && meta["dims"].is_number_integer() && meta["dims"].get<int>() != dims)
    fail(sd.origin, ": volfeat_meta says dims ", meta["dims"].get<int>(), " but the conv weights are ", dims, "D");
}

// A weights file as the CLI loads it: the 3D state_dict, what the file held, and the file's SHA-256.
struct WeightsFile {
  StateDict state;
  int file_dims = 0;   // 2: a torchvision export, inflated on load; 3: used as it is
  std::string sha256;  // of the file
};

// The one entry point the CLI uses: a 3D file as it is, a 2D export (a plain torchvision
// state_dict, architecture detected from its keys) inflated on load. The file is read once (mapped,
// the head tensors skipped) while another thread hashes it. kOnUse: a 2D export's kernels are
// inflated by the network's build, each where it is packed (TensorValues, nn/state_dict.hpp).
inline WeightsFile read_weights_file(const std::string& path, const InflateOptions& opt, bool hash = true,
                                     TensorValues when = TensorValues::kNow) {
  // The hash reads the file sequentially (DenseNet-121's 32 MB export: 27 ms with SHA-NI, 0.15 s
  // portable, Zen 3), so it runs beside the parsing. Without `hash`, a 3D
  // file is not hashed at all and a 2D one (whose inflated metadata names its source) afterwards.
  std::future<std::string> sha;
  if (hash) sha = std::async(std::launch::async, [&path] { return sha256_file(path); });
  auto digest = [&] { return sha.valid() ? sha.get() : sha256_file(path); };
  WeightsFile w;
  try {
    StateDict sd = detail::read_state_dict(path, true, when == TensorValues::kOnUse);
    w.file_dims = conv_spatial_dims(sd);
    const Graph g = graph_of(sd);
    check_weights_content(sd, g.arch(), w.file_dims);
    if (w.file_dims == 3) {
      if (hash) w.sha256 = digest();
      w.state = std::move(sd);
      return w;
    }
    const auto sd2 = std::make_shared<const StateDict>(std::move(sd));
    StateDict sd3 = inflate_state_dict(sd2, opt, when);
    w.sha256 = digest();
    w.state = with_inflation_meta(std::move(sd3), *sd2, opt, w.sha256);
    return w;
  } catch (...) {
    if (sha.valid()) sha.wait();  // the hasher reads `path` by reference
    throw;
  }
}

inline StateDict load_weights(const std::string& path, const InflateOptions& opt) {
  return read_weights_file(path, opt, false).state;
}

// volfeat's seeded random network, when no weights are given.
inline StateDict seeded_random_weights(const std::string& arch, uint64_t seed, int64_t stem_in = 1,
                                       TensorValues when = TensorValues::kNow) {
  StateDict sd = random_state_dict(arch, seed, stem_in, when);
  nlohmann::json meta{{"format", "volfeat-weights"}, {"dims", 3}, {"arch", arch}, {"scheme", "random"},
                      {"seed", seed}, {"generator", kSeededNormalGenerator}, {"weights_kind", "random"}};
  sd.meta_json = meta.dump();
  return sd;
}

}  // namespace volfeat
