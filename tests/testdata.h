// Where tests find data: the team's shared folder (../shared/testdata, absent on some machines) and this
// repository's own tests/data. A test that needs shared data and cannot find it says so loudly and skips.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace bitnet::test {

inline std::string shared_testdata(const std::string& relative) {
  return std::string(BITNETC_TESTDATA) + "/" + relative;
}

inline bool have_shared(const std::string& relative) {
  if (std::filesystem::exists(shared_testdata(relative))) return true;
  WARN("SKIPPED: shared test data missing: " << shared_testdata(relative));
  return false;
}

inline std::string local_testdata(const std::string& relative) {
  return std::string(BITNETC_TEST_DIR) + "/data/" + relative;
}

// A fresh folder under the system's temporary directory, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() / ("bitnetc-test-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace bitnet::test
