#pragma once

// nodeagent.v1 messages <-> image core types. The only place both kinds meet.

#include "nodeagent/v1/image.pb.h"
#include "nodeagent/v1/types.pb.h"
#include "services/image/core/registry_client.h"
#include "services/image/core/types.h"

namespace nodeagent::image {

void ToProto(const ImageConfig& config, v1::ImageConfig* out);
ImageConfig FromProto(const v1::ImageConfig& config);

void ToProto(const Image& image, v1::Image* out);
void ToProto(const Mount& mount, v1::Mount* out);
void ToProto(const Snapshot& snapshot, v1::Snapshot* out);
void ToProto(const PreparedSnapshot& prepared, v1::PrepareSnapshotResponse* out);
RegistryOptions FromProto(const v1::RegistryAccess& access);

}  // namespace nodeagent::image
