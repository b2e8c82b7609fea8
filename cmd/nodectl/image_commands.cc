// nodectl images / import.

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cmd/nodectl/commands.h"

namespace nodeagent::nodectl {
namespace {

int Images(CliContext& ctx) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline();
  v1::ListImagesRequest request;
  v1::ListImagesResponse response;
  grpc::Status status = stub->ListImages(context.get(), request, &response);
  if (!status.ok()) {
    PrintError("list images", status, "image");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(response, &json, options);
    std::cout << json;
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Image& image : response.images()) {
    std::string created = HumanAgo(image.created_unix() * 1000000000LL);
    std::string size = HumanSize(image.size_bytes());
    if (image.names().empty()) {
      rows.push_back({"<none>", ShortId(image.id()), created, size});
    }
    for (const std::string& name : image.names()) {
      rows.push_back({name, ShortId(image.id()), created, size});
    }
  }
  PrintTable({"NAME", "IMAGE ID", "CREATED", "SIZE"}, rows);
  return 0;
}

struct ImportOptions {
  std::string file;
  std::string name;
  std::vector<std::string> changes_cmd;
};

int Import(CliContext& ctx, const ImportOptions& options) {
  int fd = options.file == "-" ? STDIN_FILENO : ::open(options.file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    PrintError(absl::StrCat("import: open \"", options.file, "\": ", std::strerror(errno)));
    return kExitFailure;
  }
  auto stub = ctx.Images();
  // Large tarballs take a while; the deadline bounds a stuck service, not a slow disk.
  auto context = CliContext::Deadline(3600);
  v1::ImportImageResponse response;
  auto writer = stub->ImportImage(context.get(), &response);
  v1::ImportImageRequest first;
  first.mutable_metadata()->set_name(options.name);
  for (const std::string& arg : options.changes_cmd) {
    first.mutable_metadata()->mutable_config()->add_cmd(arg);
  }
  bool ok = writer->Write(first);
  std::string buffer(1 << 20, '\0');
  while (ok) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      PrintError(absl::StrCat("import: read \"", options.file, "\": ", std::strerror(errno)));
      context->TryCancel();
      break;
    }
    if (n == 0) break;
    v1::ImportImageRequest chunk;
    chunk.set_chunk(buffer.data(), static_cast<size_t>(n));
    ok = writer->Write(chunk);
  }
  if (fd != STDIN_FILENO) ::close(fd);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) {
    PrintError(absl::StrCat("import \"", options.file, "\""), status, "image");
    return kExitFailure;
  }
  std::cout << response.image().id() << "\n";
  return 0;
}

}  // namespace

void RegisterImageCommands(CLI::App& app, CliContext& context, int* exit_code) {
  CLI::App* images = app.add_subcommand("images", "List images");
  images->callback([&context, exit_code] { *exit_code = Images(context); });

  auto import_options = std::make_shared<ImportOptions>();
  CLI::App* import = app.add_subcommand("import", "Import a rootfs tarball as an image");
  import->add_option("file", import_options->file, "Tarball (plain, gzip, xz or zstd); - for stdin")
      ->required();
  import->add_option("name", import_options->name, "Image name[:tag]")->required();
  import->add_option("--cmd", import_options->changes_cmd, "Default command of the image");
  import->callback([&context, exit_code, import_options] {
    *exit_code = Import(context, *import_options);
});
}  // namespace nodeagent::nodectl

}  // namespace nodeagent::nodectl
