// libFuzzer target for the image service's parsers of untrusted input: manifests, indexes,
// image configs, docker-save manifests, and layer tarballs unpacked for real. The first input
// byte picks the parser. A layer entry that lands outside its directory aborts (a finding).
//
//   build: ninja image_parsers_fuzzer (clang, -fsanitize=fuzzer,address,undefined)
//   run:   build/tests/fuzz/image_parsers_fuzzer -max_total_time=600 tests/fuzz/corpus

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/image/core/layer_unpack.h"
#include "services/image/core/oci_config.h"
#include "services/image/core/oci_manifest.h"

namespace {

using namespace nodeagent::image;  // NOLINT: a fuzz target.

std::string Base() {
  static std::string* base = [] {
    char templ[] = "/tmp/image-fuzz-XXXXXX";
    if (mkdtemp(templ) == nullptr) abort();
    nodeagent::SetLogLevel(nodeagent::LogLevel::kError);
    atexit([] { (void)nodeagent::linux::RemoveTree(Base()); });
    return new std::string(templ);
  }();
  return *base;
}

void Unpack(absl::string_view data) {
  const std::string dir = Base() + "/layer";
  if (!nodeagent::linux::MakeDirs(dir, 0755).ok()) abort();
  bool sent = false;
  ByteSource source = [&]() -> absl::StatusOr<absl::string_view> {
    if (sent) return absl::string_view();
    sent = true;
    return data;
  };
  UnpackOptions options;
  options.max_tar_bytes = 64 << 20;
  (void)UnpackLayer(source, dir, options);
  // Nothing may appear beside the layer directory.
  absl::StatusOr<std::vector<std::string>> names = nodeagent::linux::ListDir(Base());
  if (!names.ok() || names->size() != 1 || (*names)[0] != "layer") {
    fprintf(stderr, "entry escaped the layer directory\n");
    abort();
  }
  if (!nodeagent::linux::RemoveTree(dir).ok()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size == 0) return 0;
  absl::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  switch (bytes[0] % 6) {
    case 0: {
      absl::StatusOr<OciManifest> m = ParseManifest(data);
      if (m.ok()) (void)ParseManifest(SerializeManifest(ToOciMediaTypes(*m)));
      break;
    }
    case 1: {
      absl::StatusOr<OciIndex> index = ParseIndex(data);
      if (index.ok()) (void)SelectPlatform(*index, "linux", "amd64");
      break;
    }
    case 2: {
      absl::StatusOr<OciImageConfig> config = ParseOciConfig(data);
      if (config.ok()) {
        // Serialization is canonical: what it writes parses back to the same config.
        absl::StatusOr<OciImageConfig> again = ParseOciConfig(SerializeOciConfig(*config));
        if (!again.ok()) abort();
      }
      break;
    }
    case 3:
      (void)ParseDockerSaveManifest(data);
      break;
    case 4:
      (void)ManifestKind(data);
      (void)CheckOciLayout(data);
      break;
    default:
      Unpack(data);
      break;
  }
  return 0;
}
