// A main() for the fuzz targets without libFuzzer: replays files through LLVMFuzzerTestOneInput, so
// the crashers kept in tests/fuzz/regressions (and any other inputs) run in every build, with the
// sanitizers in the VOLFEAT_SANITIZE configuration.
//
// usage: fuzz_replay_X PATH...   (a PATH may be a directory: every regular file in it, sorted)
// A file ending in .hex holds the input as hexadecimal text (whitespace and #-comment lines
// ignored), so binary crashers are committed as reviewable text.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> decode_hex(const std::string& text, const std::string& path) {
  std::vector<uint8_t> out;
  std::istringstream lines(text);
  std::string line, digits;
  while (std::getline(lines, line)) {
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    for (char c : line)
      if (!std::isspace(static_cast<unsigned char>(c))) digits.push_back(c);
  }
  if (digits.size() % 2 != 0) throw std::runtime_error(path + ": odd number of hex digits");
  for (size_t i = 0; i < digits.size(); i += 2) out.push_back(uint8_t(std::stoul(digits.substr(i, 2), nullptr, 16)));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path p(argv[i]);
    if (fs::is_directory(p)) {
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(p)) {
      files.push_back(p);
    } else {
      std::cerr << p.string() << ": no such file or directory\n";
      return 1;
    }
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<uint8_t> data = f.extension() == ".hex" ? decode_hex(bytes, f.string())
                                                        : std::vector<uint8_t>(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::cout << "replayed " << files.size() << " input(s) without a finding\n";
  return 0;
}
