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
#include "volfeat/io/mapped_file.hpp"
#include "volfeat/io/npy.hpp"
#include "volfeat/io/zip.hpp"

namespace volfeat {

using NpzMap = std::map<std::string, NpyArray>;

// One .npy member of an archive, its header parsed; its data is read (and its CRC checked) by `read`.
struct NpzMember {
  std::string key;    // member name without ".npy"
  std::string where;  // "<file>: member <name>", for messages
  NpyHeader header;
};

// Calls visit(const NpzMember&, Reader) for every member in directory order, after refusing what is
// not an .npz (a lone .npy, a PyTorch checkpoint, a member that is not .npy). reader() inflates a
// deflated member (once) and checks its CRC-32, then returns a pointer to the array's data
// (header.data_bytes bytes, little-endian, valid during the call); a member whose data is never read is
// neither checked nor, for a stored member, touched. With lazy_crc false every CRC is checked first, before
// the member's header is parsed (a damaged member then reads as "CRC mismatch").
template <class Visit>
void visit_npz(const unsigned char* p, size_t n, const std::string& origin, bool lazy_crc, Visit&& visit) {
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
  for (const ZipMember& m : zip.members()) {
    NpzMember member;
    member.where = origin + ": member " + detail::display_name(m.name);
    // np.load would hand back raw bytes for other members; nothing here could use them.
    if (m.name.size() < kSuffix.size() ||
        m.name.compare(m.name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      fail(member.where, ": not a .npy member");
    }
    member.key = m.name.substr(0, m.name.size() - kSuffix.size());
    const ZipPayload payload = zip.extract_unchecked(m);
    bool checked = !lazy_crc;
    if (checked) zip.check_crc(m, payload);
    member.header = parse_npy_header(payload.data(), payload.size(), member.where);
    auto reader = [&]() -> const unsigned char* {
      if (!checked) zip.check_crc(m, payload);
      checked = true;
      return payload.data() + member.header.data_offset;
    };
    visit(static_cast<const NpzMember&>(member), reader);
  }
}

inline NpzMap parse_npz(const unsigned char* p, size_t n, const std::string& origin) {
  NpzMap arrays;
  visit_npz(p, n, origin, false, [&](const NpzMember& m, auto read) {
    const unsigned char* data = read();
    NpyArray a;
    a.origin = m.where;
    a.dtype = m.header.dtype;
    a.shape = m.header.shape;
    a.fortran_order = m.header.fortran_order;
    a.bytes.assign(data, data + m.header.data_bytes);
    arrays.emplace(m.key, std::move(a));
  });
  return arrays;
}

inline NpzMap read_npz(const std::string& path) {
  const MappedFile file(path);
  return parse_npz(file.data(), file.size(), path);
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
