#pragma once
// The manifest of a cohort (sweep/extract --manifest): CSV with columns ct,mask,labels[,id][,series],
// one volume per row, paths relative to the manifest's directory.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "volfeat/core/error.hpp"
#include "volfeat/core/row_log.hpp"
#include "volfeat/io/ct_volume.hpp"

namespace volfeat::cli {

struct VolumeEntry {
  std::string id, ct, mask, labels;
  std::string series;  // optional manifest column: the SeriesInstanceUID when ct is a DICOM directory
};

inline std::vector<VolumeEntry> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open the manifest");
  std::string line;
  if (!std::getline(in, line)) fail(path, ": empty manifest (expected a header ct,mask,labels[,id])");
  const auto header = parse_csv_line(line);
  auto column = [&](const std::string& name, bool required) -> int {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return int(i);
    if (required) fail(path, ": manifest header lacks the column '", name, "' (expected ct,mask,labels[,id])");
    return -1;
  };
  const int c_ct = column("ct", true), c_mask = column("mask", true), c_labels = column("labels", true),
            c_id = column("id", false), c_series = column("series", false);
  const auto dir = std::filesystem::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return std::filesystem::path(p).is_absolute() ? p : (dir / p).string(); };
  std::vector<VolumeEntry> out;
  int row = 1;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty()) continue;
    const auto f = parse_csv_line(line);
    if (f.size() != header.size()) fail(path, ": row ", row, " has ", f.size(), " fields, the header ", header.size());
    VolumeEntry e{c_id >= 0 ? f[size_t(c_id)] : std::filesystem::path(f[size_t(c_ct)]).filename().string(),
                  resolve(f[size_t(c_ct)]), resolve(f[size_t(c_mask)]), f[size_t(c_labels)],
                  c_series >= 0 ? f[size_t(c_series)] : std::string()};
    for (const auto& other : out)
      if (other.id == e.id) fail(path, ": row ", row, ": volume id '", e.id, "' is not unique (add an id column)");
    out.push_back(e);
  }
  if (out.empty()) fail(path, ": the manifest lists no volume");
  return out;
}

// Ids that name a directory of their own (extract --manifest writes DIR/ID/).
inline void check_ids_are_file_names(const std::string& manifest, const std::vector<VolumeEntry>& volumes) {
  for (const auto& v : volumes) {
    bool ok = !v.id.empty() && v.id[0] != '.' && v.id != "cohort";
    for (char c : v.id) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
    if (!ok)
      fail(manifest, ": volume id '", v.id, "' cannot name its output directory (letters, digits, - _ . only, "
           "not starting with '.', not 'cohort'); add an id column");
  }
}

// Voxels of the CT (its header only): the size units are dealt by, largest first. 0 when it cannot
// be read: that volume fails later, with its message, in its turn.
inline uint64_t volume_voxels(const VolumeEntry& v) {
  try {
    const Grid g = read_ct_grid(v.ct, v.series);
    return uint64_t(g.dims[0]) * uint64_t(g.dims[1]) * uint64_t(g.dims[2]);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace volfeat::cli
