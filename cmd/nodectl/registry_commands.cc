// nodectl pull, push, save, load: moving images between the node, registries and files.

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cmd/nodectl/image_commands.h"

namespace nodeagent::nodectl {
namespace {

// One line per blob: a bar redrawn in place on a terminal, a line per finished blob
// otherwise (logs and pipes stay readable).
class ProgressBars {
 public:
  explicit ProgressBars(std::ostream& out) : out_(out), tty_(isatty(STDERR_FILENO) == 1) {}

  void Update(const std::string& digest, const std::string& action, int64_t done, int64_t total) {
    if (digest.empty()) return;
    std::string id(absl::StripPrefix(digest, "sha256:").substr(0, 12));
    auto [it, added] = lines_.try_emplace(id);
    if (added) order_.push_back(id);
    bool changed = it->second.action != action;
    it->second = {action, done, total};
    if (!tty_) {
      if (changed && (action == "done" || action == "exists" || action == "pushed")) {
        out_ << id << ": " << Label(action) << " " << HumanSize(total > 0 ? total : done) << "\n";
      }
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (!changed && !added && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    Redraw();
  }

  void Finish() {
    if (tty_) Redraw();
    out_.flush();
  }

 private:
  struct Line {
    std::string action;
    int64_t done = 0;
    int64_t total = 0;
  };

  static std::string Label(const std::string& action) {
    if (action == "downloading") return "Downloading";
    if (action == "unpacking") return "Unpacking  ";
    if (action == "uploading") return "Pushing    ";
    if (action == "exists") return "Already exists";
    if (action == "pushed") return "Pushed";
    if (action == "done") return "Pull complete";
    return action;
  }

  void Redraw() {
    if (drawn_ > 0) out_ << "\033[" << drawn_ << "A";
    for (const std::string& id : order_) {
      const Line& line = lines_[id];
      out_ << "\r\033[K" << id << ": " << Label(line.action);
      if (line.action == "downloading" || line.action == "unpacking" ||
          line.action == "uploading") {
        constexpr int kWidth = 40;
        int filled =
            line.total > 0
                ? static_cast<int>(kWidth * std::min<int64_t>(line.done, line.total) / line.total)
                : 0;
        out_ << " [" << std::string(filled, '=') << (filled < kWidth ? ">" : "")
             << std::string(kWidth - filled - (filled < kWidth ? 1 : 0), ' ') << "] "
             << HumanSize(line.done);
        if (line.total > 0) out_ << "/" << HumanSize(line.total);
      }
      out_ << "\n";
    }
    drawn_ = static_cast<int>(order_.size());
    out_.flush();
  }

  std::ostream& out_;
  const bool tty_;
  std::vector<std::string> order_;
  std::map<std::string, Line> lines_;
  int drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_;
};

struct AccessFlags {
  bool plain_http = false;
  bool tls_verify = true;
  std::string ca_file;
  int64_t chunk_bytes = 0;

  void Add(CLI::App* cmd) {
    cmd->add_flag("--plain-http", plain_http, "Talk HTTP, not HTTPS, to the registry");
    cmd->add_option("--tls-verify", tls_verify, "Verify the registry's certificate")
        ->capture_default_str();
    cmd->add_option("--ca-file", ca_file, "PEM CA certificates to trust (path on the node)");
  }

  void ToProto(v1::RegistryAccess* out) const {
    out->set_plain_http(plain_http);
    out->set_skip_tls_verify(!tls_verify);
    if (!ca_file.empty()) {
      char* real = realpath(ca_file.c_str(), nullptr);
      out->set_ca_file(real != nullptr ? real : ca_file);
      free(real);
    }
    out->set_chunk_bytes(chunk_bytes);
  }
};

int Pull(CliContext& ctx, const std::string& ref, const AccessFlags& access, bool quiet,
         bool skip_unpack) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(6 * 3600);
  v1::PullImageRequest request;
  request.set_ref(ref);
  access.ToProto(request.mutable_access());
  request.set_skip_unpack(skip_unpack);
  auto reader = stub->PullImage(context.get(), request);
  ProgressBars bars(std::cerr);
  v1::PullImageResponse message;
  v1::PullImageResponse last;
  while (reader->Read(&message)) {
    if (message.has_image()) {
      last = message;
      continue;
    }
    if (!quiet)
      bars.Update(message.layer(), message.action(), message.done_bytes(), message.total_bytes());
  }
  grpc::Status status = reader->Finish();
  if (!quiet) bars.Finish();
  if (!status.ok()) {
    PrintError(absl::StrCat("pull \"", ref, "\""), status, "image");
    return kExitFailure;
  }
  if (!quiet) std::cerr << "Digest: " << last.manifest_digest() << "\n";
  std::cout << last.image().id() << "\n";
  return 0;
}

int Push(CliContext& ctx, const std::string& image, const std::string& ref,
         const AccessFlags& access, bool quiet) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(6 * 3600);
  v1::PushImageRequest request;
  request.set_image(image);
  request.set_ref(ref);
  access.ToProto(request.mutable_access());
  auto reader = stub->PushImage(context.get(), request);
  ProgressBars bars(std::cerr);
  v1::PushImageResponse message;
  std::string digest;
  while (reader->Read(&message)) {
    if (!message.digest().empty()) {
      digest = message.digest();
      continue;
    }
    if (!quiet)
      bars.Update(message.layer(), message.action(), message.done_bytes(), message.total_bytes());
  }
  grpc::Status status = reader->Finish();
  if (!quiet) bars.Finish();
  if (!status.ok()) {
    PrintError(absl::StrCat("push \"", image, "\" to \"", ref, "\""), status, "image");
    return kExitFailure;
  }
  std::cout << digest << "\n";
  return 0;
}

int Save(CliContext& ctx, const std::vector<std::string>& refs, const std::string& output) {
  if (output.empty() && isatty(STDOUT_FILENO) == 1) {
    PrintError("save: refusing to write an archive to a terminal; use -o FILE");
    return kExitFailure;
  }
  // Written beside the target and renamed at the end: a failed save leaves no partial file.
  std::string partial = output.empty() ? "" : absl::StrCat(output, ".partial");
  std::unique_ptr<std::ofstream> file;
  std::ostream* out = &std::cout;
  if (!output.empty()) {
    file = std::make_unique<std::ofstream>(partial, std::ios::binary | std::ios::trunc);
    if (!*file) {
      PrintError(absl::StrCat("save: open \"", partial, "\": ", std::strerror(errno)));
      return kExitFailure;
    }
    out = file.get();
  }
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(6 * 3600);
  v1::SaveImageRequest request;
  for (const std::string& ref : refs) request.add_refs(ref);
  auto reader = stub->SaveImage(context.get(), request);
  v1::SaveImageResponse chunk;
  while (reader->Read(&chunk)) {
    out->write(chunk.chunk().data(), static_cast<std::streamsize>(chunk.chunk().size()));
  }
  grpc::Status status = reader->Finish();
  out->flush();
  bool written = static_cast<bool>(*out);
  if (file) file->close();
  if (!status.ok() || !written) {
    if (!partial.empty()) std::remove(partial.c_str());
    PrintError("save",
               status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL, "write failed") : status,
               "image");
    return kExitFailure;
  }
  if (!partial.empty() && std::rename(partial.c_str(), output.c_str()) != 0) {
    PrintError(absl::StrCat("save: rename to \"", output, "\": ", std::strerror(errno)));
    std::remove(partial.c_str());
    return kExitFailure;
  }
  return 0;
}

int Load(CliContext& ctx, const std::string& input, bool quiet, bool skip_unpack) {
  // A directory (an OCI layout, an unpacked docker save) is sent as a tar made by tar(1).
  FILE* pipe = nullptr;
  int fd = STDIN_FILENO;
  struct stat st;
  if (!input.empty() && input != "-") {
    if (::stat(input.c_str(), &st) != 0) {
      PrintError(absl::StrCat("load: \"", input, "\": ", std::strerror(errno)));
      return kExitFailure;
    }
    if (S_ISDIR(st.st_mode)) {
      std::string quoted = absl::StrCat("'", input, "'");
      if (input.find('\'') != std::string::npos) {
        PrintError("load: directory names with quotes are not supported");
        return kExitFailure;
      }
      pipe = ::popen(absl::StrCat("tar -C ", quoted, " -cf - .").c_str(), "re");
      if (pipe == nullptr) {
        PrintError(absl::StrCat("load: run tar: ", std::strerror(errno)));
        return kExitFailure;
      }
      fd = fileno(pipe);
    } else {
      fd = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        PrintError(absl::StrCat("load: open \"", input, "\": ", std::strerror(errno)));
        return kExitFailure;
      }
    }
  }
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(6 * 3600);
  v1::LoadImageResponse response;
  auto writer = stub->LoadImage(context.get(), &response);
  // Streaming hundreds of MB through gRPC allocates and frees a few MB per message: glibc
  // would hand that memory back to the kernel and fault it in again every time (half of this
  // command's CPU). Freed memory is kept instead, and messages are big to have fewer of them.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  constexpr size_t kChunkBytes = 1 << 20;
  v1::LoadImageRequest chunk;
  chunk.set_skip_unpack(skip_unpack);  // Read from the first message.
  std::string& buffer = *chunk.mutable_chunk();
  bool ok = true;
  bool read_failed = false;
  while (ok) {
    buffer.resize(kChunkBytes);
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      PrintError(absl::StrCat("load: read \"", input, "\": ", std::strerror(errno)));
      read_failed = true;
      context->TryCancel();
      break;
    }
    if (n == 0) break;
    buffer.resize(static_cast<size_t>(n));
    ok = writer->Write(chunk);
  }
  if (pipe != nullptr) {
    int rc = ::pclose(pipe);
    if (rc != 0 && !read_failed) {
      PrintError(absl::StrCat("load: tar of \"", input, "\" failed"));
      context->TryCancel();
      read_failed = true;
    }
  } else if (fd != STDIN_FILENO) {
    ::close(fd);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (read_failed) return kExitFailure;
  if (!status.ok()) {
    PrintError(absl::StrCat("load \"", input.empty() ? "-" : input, "\""), status, "image");
    return kExitFailure;
  }
  for (const v1::Image& image : response.images()) {
    if (quiet) {
      std::cout << image.id() << "\n";
      continue;
    }
    if (image.names().empty()) std::cout << "Loaded image ID: " << image.id() << "\n";
    for (const std::string& name : image.names()) std::cout << "Loaded image: " << name << "\n";
  }
  return 0;
}

int Login(CliContext& ctx, const std::string& registry, const std::string& username,
          std::string password, bool password_stdin, const AccessFlags& access) {
  if (password_stdin) {
    if (!password.empty()) {
      PrintError("login: give the password with --password-stdin or -p, not both");
      return kExitFailure;
    }
    std::string line;
    std::getline(std::cin, line);
    password = std::string(absl::StripTrailingAsciiWhitespace(line));
  } else if (password.empty()) {
    PrintError("login: give the password on stdin with --password-stdin");
    return kExitFailure;
  } else {
    std::cerr << "WARNING: a password on the command line shows in ps and shell history; "
                 "use --password-stdin\n";
  }
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(120);
  v1::LoginRequest request;
  request.set_registry(registry);
  request.set_username(username);
  request.set_password(password);
  access.ToProto(request.mutable_access());
  v1::LoginResponse response;
  grpc::Status status = stub->Login(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("login to ", registry), status, "image");
    return kExitFailure;
  }
  std::cout << "Login Succeeded (credentials saved by the image service in " << response.saved_in()
            << ")\n";
  return 0;
}

int Logout(CliContext& ctx, const std::string& registry) {
  auto stub = ctx.Images();
  auto context = CliContext::Deadline(30);
  v1::LogoutRequest request;
  request.set_registry(registry);
  v1::LogoutResponse response;
  grpc::Status status = stub->Logout(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("logout from ", registry), status, "image");
    return kExitFailure;
  }
  std::cout << (response.removed() ? "Removed login credentials for " : "Not logged in to ")
            << registry << "\n";
  return 0;
}

}  // namespace

void RegisterRegistryCommands(CLI::App& app, CliContext& context, int* exit_code) {
  struct PullArgs {
    std::string ref;
    AccessFlags access;
    bool quiet = false;
    bool skip_unpack = false;
  };
  auto pull_args = std::make_shared<PullArgs>();
  CLI::App* pull = app.add_subcommand("pull", "Pull an image from a registry");
  pull->add_option("ref", pull_args->ref, "host[:port]/repository[:tag|@digest]")->required();
  pull_args->access.Add(pull);
  pull->add_flag("-q,--quiet", pull_args->quiet, "No progress");
  pull->add_flag("--skip-unpack", pull_args->skip_unpack,
                 "Only download and verify the blobs; the first container (or `image unpack`) "
                 "unpacks the layers");
  pull->callback([&context, exit_code, pull_args] {
    *exit_code =
        Pull(context, pull_args->ref, pull_args->access, pull_args->quiet, pull_args->skip_unpack);
  });

  struct PushArgs {
    std::string image;
    std::string ref;
    AccessFlags access;
    bool quiet = false;
  };
  auto push_args = std::make_shared<PushArgs>();
  CLI::App* push = app.add_subcommand("push", "Push an image to a registry");
  push->add_option("image", push_args->image, "Local image (name or id)")->required();
  push->add_option("ref", push_args->ref, "host[:port]/repository:tag (default: the image name)");
  push_args->access.Add(push);
  push->add_option("--chunk-size", push_args->access.chunk_bytes,
                   "Bytes per upload chunk (default 16 MiB)");
  push->add_flag("-q,--quiet", push_args->quiet, "No progress");
  push->callback([&context, exit_code, push_args] {
    const std::string& ref = push_args->ref.empty() ? push_args->image : push_args->ref;
    *exit_code = Push(context, push_args->image, ref, push_args->access, push_args->quiet);
  });

  struct LoginArgs {
    std::string registry;
    std::string username;
    std::string password;
    bool password_stdin = false;
    AccessFlags access;
  };
  auto login_args = std::make_shared<LoginArgs>();
  CLI::App* login =
      app.add_subcommand("login", "Save credentials for a registry (checked against it first)");
  login->add_option("registry", login_args->registry, "host[:port]")->required();
  login->add_option("-u,--username", login_args->username, "User name")->required();
  login->add_option("-p,--password", login_args->password, "Password (prefer --password-stdin)");
  login->add_flag("--password-stdin", login_args->password_stdin, "Read the password from stdin");
  login_args->access.Add(login);
  login->callback([&context, exit_code, login_args] {
    *exit_code = Login(context, login_args->registry, login_args->username, login_args->password,
                       login_args->password_stdin, login_args->access);
  });

  auto logout_registry = std::make_shared<std::string>();
  CLI::App* logout = app.add_subcommand("logout", "Forget the credentials of a registry");
  logout->add_option("registry", *logout_registry, "host[:port]")->required();
  logout->callback(
      [&context, exit_code, logout_registry] { *exit_code = Logout(context, *logout_registry); });

  auto save_refs = std::make_shared<std::vector<std::string>>();
  auto save_output = std::make_shared<std::string>();
  CLI::App* save = app.add_subcommand("save", "Write images as an OCI archive");
  save->add_option("images", *save_refs, "Images (names or ids)")->required();
  save->add_option("-o,--output", *save_output, "File (default: stdout)");
  save->callback([&context, exit_code, save_refs, save_output] {
    *exit_code = Save(context, *save_refs, *save_output);
  });

  auto load_input = std::make_shared<std::string>();
  auto load_quiet = std::make_shared<bool>(false);
  auto load_skip_unpack = std::make_shared<bool>(false);
  CLI::App* load = app.add_subcommand(
      "load", "Load images from an OCI archive or layout, or a docker-save archive");
  load->add_option("-i,--input", *load_input, "File or directory (default: stdin)");
  load->add_flag("-q,--quiet", *load_quiet, "Print only image ids");
  load->add_flag("--skip-unpack", *load_skip_unpack,
                 "Only store and verify the blobs; the first container (or `image unpack`) "
                 "unpacks the layers");
  load->callback([&context, exit_code, load_input, load_quiet, load_skip_unpack] {
    *exit_code = Load(context, *load_input, *load_quiet, *load_skip_unpack);
  });
}

}  // namespace nodeagent::nodectl
