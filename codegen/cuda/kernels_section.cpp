#include "codegen/cuda/kernels_section.h"

#include "codegen/indexed_section.h"
#include "ir/error.h"

#include <nlohmann/json.hpp>


namespace bitnet::cuda {
namespace {

constexpr char kMagic[8] = {'B', 'N', 'C', 'U', 'D', 'A', 'K', '1'};

// "sm_90" / "compute_90" -> 90; -1 when malformed.
int arch_number(const std::string& arch, bool ptx) {
  const std::string prefix = ptx ? "compute_" : "sm_";
  if (arch.rfind(prefix, 0) != 0 || arch.size() == prefix.size() || arch.size() > prefix.size() + 3) return -1;
  int v = 0;
  for (size_t i = prefix.size(); i < arch.size(); ++i) {
    if (arch[i] < '0' || arch[i] > '9') return -1;
    v = v * 10 + (arch[i] - '0');
  }
  return v;
}

}  // namespace

std::string serialize_kernels_section(const KernelsSection& s) {
  std::string blobs = s.source;
  nlohmann::json index{{"nvrtc", s.nvrtc_version}, {"options", s.options}, {"kernels", s.kernels},
                       {"source", {{"offset", 0}, {"size", s.source.size()}}}, {"images", nlohmann::json::array()}};
  for (const auto& image : s.images) {
    index["images"].push_back({{"arch", image.arch}, {"kind", image.ptx ? "ptx" : "cubin"}, {"offset", blobs.size()}, {"size", image.bytes.size()}});
    blobs.append(reinterpret_cast<const char*>(image.bytes.data()), image.bytes.size());
  }
  return write_indexed_section(kMagic, index, blobs);
}

KernelsSection parse_kernels_section(std::span<const uint8_t> bytes, const std::string& where) {
  const IndexedSection section = read_indexed_section(bytes, kMagic, where, "a CUDA kernels section");
  const nlohmann::json& index = section.index;
  KernelsSection s;
  try {
    s.nvrtc_version = index.at("nvrtc").get<std::string>();
    s.options = index.at("options").get<std::vector<std::string>>();
    s.kernels = index.at("kernels").get<std::vector<std::string>>();
    const auto source = section.blob(index.at("source"), "source");
    s.source.assign(source.begin(), source.end());
    for (const auto& entry : index.at("images")) {
      KernelImage image;
      image.arch = entry.at("arch").get<std::string>();
      const std::string kind = entry.at("kind").get<std::string>();
      if (kind != "ptx" && kind != "cubin") fail("{}: image kind '{}' is not ptx or cubin", where, kind);
      image.ptx = kind == "ptx";
      if (arch_number(image.arch, image.ptx) < 0) fail("{}: image arch '{}' is not {}NN", where, image.arch, image.ptx ? "compute_" : "sm_");
      const auto data = section.blob(entry, image.arch);
      if (image.ptx && (data.empty() || data.back() != 0)) fail("{}: PTX image {} is not NUL-terminated", where, image.arch);
      image.bytes.assign(data.begin(), data.end());
      s.images.push_back(std::move(image));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: index: {}", where, e.what());
  }
  if (s.images.empty()) fail("{}: no compiled images", where);
  return s;
}

const KernelImage* pick_image(const KernelsSection& s, int major, int minor) {
  const int device = major * 10 + minor;
  const KernelImage* best = nullptr;
  int best_arch = -1;
  for (const auto& image : s.images) {  // a cubin for this major, the closest minor at or below the device's
    const int a = arch_number(image.arch, false);
    if (!image.ptx && a / 10 == major && a <= device && a > best_arch) best = &image, best_arch = a;
  }
  if (best) return best;
  for (const auto& image : s.images) {
    const int a = arch_number(image.arch, true);
    if (image.ptx && a <= device && a > best_arch) best = &image, best_arch = a;
  }
  return best;
}

}  // namespace bitnet::cuda
