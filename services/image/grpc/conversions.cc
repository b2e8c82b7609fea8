#include "services/image/grpc/conversions.h"

namespace nodeagent::image {

void ToProto(const ImageConfig& config, v1::ImageConfig* out) {
  out->mutable_env()->Assign(config.env.begin(), config.env.end());
  out->mutable_entrypoint()->Assign(config.entrypoint.begin(), config.entrypoint.end());
  out->mutable_cmd()->Assign(config.cmd.begin(), config.cmd.end());
  out->set_working_dir(config.working_dir);
  out->set_user(config.user);
  out->mutable_labels()->insert(config.labels.begin(), config.labels.end());
}

ImageConfig FromProto(const v1::ImageConfig& config) {
  ImageConfig out;
  out.env.assign(config.env().begin(), config.env().end());
  out.entrypoint.assign(config.entrypoint().begin(), config.entrypoint().end());
  out.cmd.assign(config.cmd().begin(), config.cmd().end());
  out.working_dir = config.working_dir();
  out.user = config.user();
  out.labels.insert(config.labels().begin(), config.labels().end());
  return out;
}

void ToProto(const Image& image, v1::Image* out) {
  out->mutable_names()->Assign(image.names.begin(), image.names.end());
  out->set_id(image.id);
  out->set_size_bytes(image.size_bytes);
  out->set_unpacked(image.unpacked);
  out->set_created_unix(absl::ToUnixSeconds(image.created));
  out->mutable_layers()->Assign(image.layers.begin(), image.layers.end());
  ToProto(image.config, out->mutable_config());
}

void ToProto(const Mount& mount, v1::Mount* out) {
  out->set_type(mount.type);
  out->set_source(mount.source);
  out->set_destination(mount.destination);
  out->mutable_options()->Assign(mount.options.begin(), mount.options.end());
}

void ToProto(const Snapshot& snapshot, v1::Snapshot* out) {
  out->set_key(snapshot.key);
  out->set_image_id(snapshot.image_id);
  out->set_upper_dir(snapshot.upper_dir);
}

void ToProto(const PreparedSnapshot& prepared, v1::PrepareSnapshotResponse* out) {
  for (const Mount& mount : prepared.mounts) ToProto(mount, out->add_mounts());
  ToProto(prepared.image, out->mutable_image());
  out->set_upper_dir(prepared.upper_dir);
}

RegistryOptions FromProto(const v1::RegistryAccess& access) {
  RegistryOptions options;
  options.plain_http = access.plain_http();
  options.skip_tls_verify = access.skip_tls_verify();
  options.ca_file = access.ca_file();
  if (access.chunk_bytes() > 0) options.chunk_bytes = access.chunk_bytes();
  return options;
}

}  // namespace nodeagent::image
