// The bundle section "kernels" of a CUDA bundle: the generated CUDA source and what NVRTC made of it.
//   8 bytes magic "BNCUDAK1", u32 little-endian length L of the JSON index, L bytes of JSON, then the blobs.
//   index: {"nvrtc": "13.0", "options": [...], "kernels": [names], "source": {"offset", "size"},
//           "images": [{"arch": "sm_90", "kind": "cubin" | "ptx", "offset", "size"}, ...]}
//   offsets are relative to the first blob byte; PTX images end with a NUL (the driver reads a C string).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bitnet::cuda {

struct KernelImage {
  std::string arch;  // "sm_90" (cubin) or "compute_90" (PTX)
  bool ptx = false;
  std::vector<uint8_t> bytes;
};

struct KernelsSection {
  std::string nvrtc_version;
  std::vector<std::string> options, kernels;
  std::string source;
  std::vector<KernelImage> images;
};

std::string serialize_kernels_section(const KernelsSection& s);
// Validates bounds and fields; throws naming `where` ("<file>: section 'kernels'").
KernelsSection parse_kernels_section(std::span<const uint8_t> bytes, const std::string& where);

// The image to load on a GPU of compute capability major.minor: a cubin of the same major and a minor not
// above the device's (the closest), else the newest PTX not above the device; nullptr when none fits.
const KernelImage* pick_image(const KernelsSection& s, int major, int minor);

}  // namespace bitnet::cuda
