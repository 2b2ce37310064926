#pragma once
// An append-only CSV that survives kill -9: the header is created atomically, each row goes out in
// one write(2) on an O_APPEND descriptor and is fsync'ed, and reopening drops a torn last line.
// Rows are keyed by their first `key_columns` fields so a restarted run can skip what is done.
// A key found twice on reopening (two runs that appended to one log before runs locked their
// directory, core/dir_lock.hpp) keeps its first row: the others are dropped and the log rewritten
// atomically, and duplicates_removed() says how many, for the caller to report.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "volfeat/core/atomic_file.hpp"
#include "volfeat/core/error.hpp"

namespace volfeat {

// RFC 4180 fields: quoted when they hold a comma, quote or newline.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

inline std::vector<std::string> parse_csv_line(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else out.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

inline std::string csv_line(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_field(fields[i]);
  return line + "\n";
}

class RowLog {
 public:
  RowLog(std::string path, std::vector<std::string> header, size_t key_columns)
      : path_(std::move(path)), header_(std::move(header)), key_columns_(key_columns) {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) {
      write_file_atomic(path_, csv_line(header_));
    } else {
      load_existing(size_t(st.st_size));
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND);
    if (fd_ < 0) fail(path_, ": cannot open for appending (", std::strerror(errno), ")");
  }
  ~RowLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  RowLog(const RowLog&) = delete;
  RowLog& operator=(const RowLog&) = delete;

  bool has(const std::vector<std::string>& key) const { return keys_.count(key_of(key)) != 0; }
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }
  size_t dropped_partial_bytes() const { return dropped_; }
  size_t duplicates_removed() const { return duplicates_; }
  // The key of the first duplicate removed ("" if none), for the report.
  const std::vector<std::string>& first_duplicate() const { return first_duplicate_; }

  void append(const std::vector<std::string>& fields) {
    if (fields.size() != header_.size()) fail(path_, ": row has ", fields.size(), " fields, header ", header_.size());
    const std::string key = key_of(fields);
    if (keys_.count(key)) return;  // never duplicate a row
    const std::string line = csv_line(fields);
    const ssize_t n = ::write(fd_, line.data(), line.size());
    if (n != ssize_t(line.size())) fail(path_, ": write failed (", std::strerror(errno), ")");
    if (::fsync(fd_) != 0) fail(path_, ": fsync failed (", std::strerror(errno), ")");
    keys_.insert(key);
    rows_.push_back(fields);
  }

 private:
  std::string key_of(const std::vector<std::string>& f) const {
    std::string k;
    for (size_t i = 0; i < key_columns_ && i < f.size(); ++i) k += f[i] + '\x1f';
    return k;
  }

  void load_existing(size_t size) {
    std::ifstream in(path_, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.size() != size) fail(path_, ": could not read it back");
    // A run killed mid-write can leave a last line without its newline: drop it, it is redone.
    const size_t end = data.rfind('\n');
    const size_t keep = end == std::string::npos ? 0 : end + 1;
    if (keep < data.size()) {
      dropped_ = data.size() - keep;
      if (::truncate(path_.c_str(), off_t(keep)) != 0) fail(path_, ": cannot drop a torn last line (", std::strerror(errno), ")");
      data.resize(keep);
    }
    std::istringstream lines(data);
    std::string line;
    if (!std::getline(lines, line) || parse_csv_line(line) != header_)
      fail(path_, ": exists with other columns; pass another --out or remove it (expected header: ",
           csv_line(header_).substr(0, 120), "...)");
    std::string kept = line + "\n";  // the header, byte for byte
    while (std::getline(lines, line)) {
      auto f = parse_csv_line(line);
      if (f.size() != header_.size()) fail(path_, ": malformed row '", line.substr(0, 80), "'");
      if (!keys_.insert(key_of(f)).second) {
        if (duplicates_++ == 0) first_duplicate_.assign(f.begin(), f.begin() + long(std::min(key_columns_, f.size())));
        continue;
      }
      kept += line + "\n";
      rows_.push_back(std::move(f));
    }
    // Rename, not truncate-and-rewrite: a crash in between leaves the old log or the new, never half.
    if (duplicates_) write_file_atomic(path_, kept);
  }

  std::string path_;
  std::vector<std::string> header_;
  size_t key_columns_;
  int fd_ = -1;
  std::set<std::string> keys_;
  std::vector<std::vector<std::string>> rows_;
  size_t dropped_ = 0;
  size_t duplicates_ = 0;
  std::vector<std::string> first_duplicate_;
};

}  // namespace volfeat
