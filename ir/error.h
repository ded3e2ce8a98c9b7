// The one error type of bitnetc. Every layer reports bad input by throwing bitnet::Error whose message
// already names the file, the field (key, tensor, op, flag) and what was wrong, so the tools only have to
// print it on one line and exit non-zero. Our own invariants use assert, never Error.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace bitnet {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace bitnet
