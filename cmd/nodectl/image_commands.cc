// nodectl images, import, tag, rmi, image prune, system df, history, diff, commit, export.

#include "cmd/nodectl/image_commands.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cmd/nodectl/commands.h"

namespace nodeagent::nodectl {

std::string ResolveContainerId(CliContext& ctx, const std::string& container,
                               const std::string& what) {
  auto stub = ctx.Runtime();
  auto context = CliContext::Deadline();
  v1::GetContainerRequest request;
  request.set_id(container);
  v1::GetContainerResponse response;
  grpc::Status status = stub->GetContainer(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(what, status, "runtime");
    return "";
  }
  return response.container().id();
}

void PrintJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::cout << json;
}

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

int Tag(CliContext& ctx, const std::string& source, const std::string& target) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline();
  v1::TagImageRequest request;
  request.set_source(source);
  request.set_target(target);
  v1::TagImageResponse response;
  grpc::Status status = stub->TagImage(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("tag \"", source, "\""), status, "image");
    return kExitFailure;
  }
  return 0;
}

int RemoveImages(CliContext& ctx, const std::vector<std::string>& refs, bool force) {
  auto stub = ctx.Images();
  int rc = 0;
  for (const std::string& ref : refs) {
    auto context = CliContext::Deadline(300);
    v1::RemoveImageRequest request;
    request.set_ref(ref);
    request.set_force(force);
    v1::RemoveImageResponse response;
    grpc::Status status = stub->RemoveImage(context.get(), request, &response);
    if (!status.ok()) {
      PrintError(absl::StrCat("rmi \"", ref, "\""), status, "image");
      rc = kExitFailure;
      continue;
    }
    for (const std::string& name : response.untagged()) std::cout << "Untagged: " << name << "\n";
    for (const std::string& id : response.deleted()) std::cout << "Deleted: " << id << "\n";
  }
  return rc;
}

int Prune(CliContext& ctx, bool all) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(600);
  v1::PruneImagesRequest request;
  request.set_all(all);
  v1::PruneImagesResponse response;
  grpc::Status status = stub->PruneImages(context.get(), request, &response);
  if (!status.ok()) {
    PrintError("image prune", status, "image");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    PrintJson(response);
    return 0;
  }
  for (const std::string& id : response.deleted()) std::cout << "Deleted: " << id << "\n";
  std::cout << "Total reclaimed space: " << HumanSize(response.reclaimed_bytes()) << "\n";
  return 0;
}

int UnpackImages(CliContext& ctx, const std::vector<std::string>& refs) {
  auto stub = ctx.Images();
  return ForEachName(refs, "image unpack", "image", [&](const std::string& ref, std::string* out) {
    auto context = CliContext::Deadline(6 * 3600);
    v1::UnpackImageRequest request;
    request.set_ref(ref);
    v1::UnpackImageResponse response;
    grpc::Status status = stub->UnpackImage(context.get(), request, &response);
    *out = response.image().id();
    return status;
  });
}

int SystemDf(CliContext& ctx) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(300);
  v1::GetDiskUsageRequest request;
  v1::GetDiskUsageResponse r;
  grpc::Status status = stub->GetDiskUsage(context.get(), request, &r);
  if (!status.ok()) {
    PrintError("system df", status, "image");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    PrintJson(r);
    return 0;
  }
  auto percent = [](int64_t part, int64_t whole) {
    return whole > 0 ? absl::StrCat(" (", part * 100 / whole, "%)") : std::string();
  };
  int64_t upper = 0;
  for (const v1::SnapshotUsage& s : r.snapshots()) upper += s.upper_bytes();
  PrintTable({"TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"},
             {{"Images", absl::StrCat(r.images()), absl::StrCat(r.images_in_use()),
               HumanSize(r.layer_bytes()),
               HumanSize(r.layer_bytes_reclaimable()) +
                   percent(r.layer_bytes_reclaimable(), r.layer_bytes())},
              {"Blobs", absl::StrCat(r.blobs()), "", HumanSize(r.blob_bytes()),
               HumanSize(r.blob_bytes_reclaimable()) +
                   percent(r.blob_bytes_reclaimable(), r.blob_bytes())},
              {"Containers", absl::StrCat(r.snapshots_size()), absl::StrCat(r.snapshots_size()),
               HumanSize(upper), "0B"}});
  if (r.snapshots_size() > 0) {
    std::cout << "\n";
    std::vector<std::vector<std::string>> rows;
    for (const v1::SnapshotUsage& s : r.snapshots()) {
      rows.push_back({s.key().substr(0, 12), ShortId(s.image_id()), HumanSize(s.upper_bytes())});
    }
    PrintTable({"CONTAINER ID", "IMAGE ID", "SIZE (upper)"}, rows);
  }
  return 0;
}

int History(CliContext& ctx, const std::string& ref, bool no_trunc) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline();
  v1::ImageHistoryRequest request;
  request.set_ref(ref);
  v1::ImageHistoryResponse response;
  grpc::Status status = stub->ImageHistory(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("history \"", ref, "\""), status, "image");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    PrintJson(response);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::HistoryEntry& e : response.entries()) {
    std::string created_by = e.created_by();
    if (!no_trunc && created_by.size() > 45) created_by = created_by.substr(0, 42) + "...";
    std::string layer =
        e.layer().empty() ? "<missing>" : (no_trunc ? e.layer() : ShortId(e.layer()));
    rows.push_back({layer, HumanAgo(e.created_unix() * 1000000000LL), created_by,
                    HumanSize(e.size_bytes()), e.comment()});
  }
  PrintTable({"LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"}, rows);
  return 0;
}

int Diff(CliContext& ctx, const std::string& container) {
  std::string key = ResolveContainerId(ctx, container, absl::StrCat("diff \"", container, "\""));
  if (key.empty()) return kExitFailure;
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(300);
  v1::DiffSnapshotRequest request;
  request.set_key(key);
  v1::DiffSnapshotResponse response;
  grpc::Status status = stub->DiffSnapshot(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("diff \"", container, "\""), status, "image");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    PrintJson(response);
    return 0;
  }
  for (const v1::FileChange& c : response.changes())
    std::cout << c.kind() << " " << c.path() << "\n";
  return 0;
}

struct CommitFlags {
  std::string container;
  std::string name;
  std::string message;
  std::vector<std::string> cmd;
};

int Commit(CliContext& ctx, const CommitFlags& flags) {
  std::string key =
      ResolveContainerId(ctx, flags.container, absl::StrCat("commit \"", flags.container, "\""));
  if (key.empty()) return kExitFailure;
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(3600);
  v1::CommitSnapshotRequest request;
  request.set_key(key);
  request.set_name(flags.name);
  request.set_comment(flags.message);
  if (!flags.cmd.empty()) {
    // Keep the parent's config except the command.
    auto get = CliContext::Deadline();
    v1::ListSnapshotsResponse snapshots;
    grpc::Status listed = stub->ListSnapshots(get.get(), v1::ListSnapshotsRequest(), &snapshots);
    for (const v1::Snapshot& s : snapshots.snapshots()) {
      if (s.key() != key) continue;
      auto image_context = CliContext::Deadline();
      v1::GetImageRequest image_request;
      image_request.set_ref(s.image_id());
      v1::GetImageResponse image;
      if (stub->GetImage(image_context.get(), image_request, &image).ok()) {
        *request.mutable_config() = image.image().config();
      }
    }
    if (!listed.ok()) {
      PrintError("commit: list snapshots", listed, "image");
      return kExitFailure;
    }
    request.mutable_config()->clear_cmd();
    for (const std::string& arg : flags.cmd) request.mutable_config()->add_cmd(arg);
    request.set_replace_config(true);
  }
  v1::CommitSnapshotResponse response;
  grpc::Status status = stub->CommitSnapshot(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("commit \"", flags.container, "\""), status, "image");
    return kExitFailure;
  }
  std::cout << response.image().id() << "\n";
  return 0;
}

int Export(CliContext& ctx, const std::string& container, const std::string& output) {
  std::string key = ResolveContainerId(ctx, container, absl::StrCat("export \"", container, "\""));
  if (key.empty()) return kExitFailure;
  std::unique_ptr<std::ofstream> file;
  std::ostream* out = &std::cout;
  if (!output.empty() && output != "-") {
    file = std::make_unique<std::ofstream>(output, std::ios::binary | std::ios::trunc);
    if (!*file) {
      PrintError(absl::StrCat("export: open \"", output, "\": ", std::strerror(errno)));
      return kExitFailure;
    }
    out = file.get();
  }
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(3600);
  v1::ExportSnapshotRequest request;
  request.set_key(key);
  auto reader = stub->ExportSnapshot(context.get(), request);
  v1::ExportSnapshotResponse chunk;
  while (reader->Read(&chunk))
    out->write(chunk.chunk().data(), static_cast<std::streamsize>(chunk.chunk().size()));
  grpc::Status status = reader->Finish();
  out->flush();
  if (!status.ok() || !*out) {
    if (file) std::remove(output.c_str());
    PrintError(absl::StrCat("export \"", container, "\""),
               status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL, "write failed") : status,
               "image");
    return kExitFailure;
  }
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

auto tag_args = std::make_shared<std::pair<std::string, std::string>>();
CLI::App* tag = app.add_subcommand("tag", "Give an image another name");
tag->add_option("source", tag_args->first, "Image (name or id)")->required();
tag->add_option("target", tag_args->second, "New name[:tag]")->required();
tag->callback([&context, exit_code, tag_args] {
  *exit_code = Tag(context, tag_args->first, tag_args->second);
});

auto rmi_refs = std::make_shared<std::vector<std::string>>();
auto rmi_force = std::make_shared<bool>(false);
CLI::App* rmi = app.add_subcommand("rmi", "Remove images (refused while a container uses one)");
rmi->add_option("images", *rmi_refs, "Images (names or ids)")->required();
rmi->add_flag("-f,--force", *rmi_force, "Remove a used image's names, or all names by id");
rmi->callback([&context, exit_code, rmi_refs, rmi_force] {
  *exit_code = RemoveImages(context, *rmi_refs, *rmi_force);
});

CLI::App* image = app.add_subcommand("image", "Manage images");
image->require_subcommand(1);
auto prune_all = std::make_shared<bool>(false);
CLI::App* prune = image->add_subcommand("prune", "Remove unused images, layers and blobs");
prune->add_flag("-a,--all", *prune_all, "Every image no container uses, not only unnamed ones");
prune->callback([&context, exit_code, prune_all] { *exit_code = Prune(context, *prune_all); });

auto unpack_refs = std::make_shared<std::vector<std::string>>();
CLI::App* unpack = image->add_subcommand(
    "unpack", "Unpack the layers of images pulled or loaded with --skip-unpack");
unpack->add_option("images", *unpack_refs, "Images (names or ids)")->required();
unpack->callback([&context, exit_code, unpack_refs] {
  *exit_code = UnpackImages(context, *unpack_refs);
});

CLI::App* system = app.add_subcommand("system", "Node-wide information");
system->require_subcommand(1);
CLI::App* df = system->add_subcommand("df", "Space used by images, layers and containers");
df->callback([&context, exit_code] { *exit_code = SystemDf(context); });

auto history_ref = std::make_shared<std::string>();
auto history_no_trunc = std::make_shared<bool>(false);
CLI::App* history = app.add_subcommand("history", "Show an image's layers and what made them");
history->add_option("image", *history_ref, "Image")->required();
history->add_flag("--no-trunc", *history_no_trunc, "Do not shorten ids and commands");
history->callback([&context, exit_code, history_ref, history_no_trunc] {
  *exit_code = History(context, *history_ref, *history_no_trunc);
});

auto diff_container = std::make_shared<std::string>();
CLI::App* diff = app.add_subcommand("diff", "List a container's filesystem changes (A/C/D)");
diff->add_option("container", *diff_container, "Container (name or id)")->required();
diff->callback([&context, exit_code, diff_container] {
  *exit_code = Diff(context, *diff_container);
});

auto commit_flags = std::make_shared<CommitFlags>();
CLI::App* commit = app.add_subcommand("commit", "Make an image from a container's changes");
commit->add_option("container", commit_flags->container, "Container (name or id)")->required();
commit->add_option("name", commit_flags->name, "Name[:tag] of the new image");
commit->add_option("-m,--message", commit_flags->message, "Commit message (history comment)");
commit->add_option("--cmd", commit_flags->cmd, "Default command of the new image");
commit->callback([&context, exit_code, commit_flags] {
  *exit_code = Commit(context, *commit_flags);
});

auto export_args = std::make_shared<std::pair<std::string, std::string>>();
CLI::App* export_cmd =
    app.add_subcommand("export", "Write a container's whole filesystem as a tar");
export_cmd->add_option("container", export_args->first, "Container (name or id)")->required();
export_cmd->add_option("-o,--output", export_args->second, "File (default: stdout)");
export_cmd->callback([&context, exit_code, export_args] {
  *exit_code = Export(context, export_args->first, export_args->second);
});

RegisterRegistryCommands(app, context, exit_code);
}  // namespace nodeagent::nodectl

}  // namespace nodeagent::nodectl
