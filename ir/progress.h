// Progress for long commands: a counting line redrawn in place on a terminal, silence when stderr is piped
// or redirected (so scripts and CI logs stay clean).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

namespace bitnet {

class Progress {
 public:
  explicit Progress(std::string label) : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) == 1) {}
  ~Progress() { finish(); }
  void update(size_t done, size_t total) {
    if (!enabled_) return;
    int width = 30, filled = total ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu", label_.c_str(), filled, "##############################",
                 width - filled, "", done, total);
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace bitnet
