#pragma once
// NumPy .npz archives: a zip of .npy members, as written by np.savez / np.savez_compressed.
// Keys are member names without ".npy", matching what np.load(...).files reports.
#include <cstddef>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/error.hpp"
#include "volfeat/io/npy.hpp"
#include "volfeat/io/zip.hpp"

namespace volfeat {

using NpzMap = std::map<std::string, NpyArray>;

inline NpzMap parse_npz(const unsigned char* p, size_t n, const std::string& origin) {
  static const std::string kSuffix = ".npy";
  static const unsigned char kNpyMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (n >= sizeof kNpyMagic && std::memcmp(p, kNpyMagic, sizeof kNpyMagic) == 0)
    fail(origin, ": is a single .npy file, not an .npz archive (write weights with np.savez)");
  const ZipReader zip(p, n, origin);
  for (const ZipMember& m : zip.members()) {
    const std::string pkl = "data.pkl";
    if (m.name.size() >= pkl.size() && m.name.compare(m.name.size() - pkl.size(), pkl.size(), pkl) == 0)
      fail(origin, ": is a PyTorch checkpoint (member ", detail::display_name(m.name),
           "), not an .npz; export it with weights/export_torchvision.py --pth FILE --out FILE.npz");
  }
  NpzMap arrays;
  for (const ZipMember& m : zip.members()) {
    const std::string where = origin + ": member " + detail::display_name(m.name);
    // np.load would hand back raw bytes for other members; nothing here could use them.
    if (m.name.size() < kSuffix.size() ||
        m.name.compare(m.name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      fail(where, ": not a .npy member");
    }
    const ZipPayload payload = zip.extract(m);
    arrays.emplace(m.name.substr(0, m.name.size() - kSuffix.size()),
                   parse_npy(payload.data(), payload.size(), where));
  }
  return arrays;
}

inline NpzMap read_npz(const std::string& path) {
  const std::vector<unsigned char> data = detail::read_file_bytes(path);
  return parse_npz(data.data(), data.size(), path);
}

// Atomic: readers see either the previous file or the complete new one.
inline void write_npz(const std::string& path, const NpzMap& arrays, bool compress = false) {
  AtomicFile file(path);
  ZipWriter zip(file);
  for (const auto& [key, array] : arrays) {
    zip.add(key + ".npy", detail::serialize_npy_as(array, path + ": array " + key), compress);
  }
  zip.finish();
  file.commit();
}

}  // namespace volfeat
