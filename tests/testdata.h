// Where tests find data: the team's shared folder (../shared/testdata, absent on some machines) and this
// repository's own tests/data. A test that needs shared data and cannot find it says so loudly and skips.
#pragma once

#include <catch2/catch.hpp>

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

}  // namespace bitnet::test
