#pragma once

// proto <-> runtime core conversions, all in one place.

#include <vector>

#include "nodeagent/v1/runtime.pb.h"
#include "nodeagent/v1/types.pb.h"
#include "services/runtime/core/container.h"
#include "services/runtime/core/log_format.h"

namespace nodeagent::runtime {

ContainerConfig ConfigFromProto(const v1::ContainerSpec& spec);
// A user namespace's uid or gid map, both ways (ContainerSpec, PrepareSnapshotRequest).
std::vector<IdMapping> IdMappingsFromProto(
    const google::protobuf::RepeatedPtrField<v1::IdMapping>& mappings);
void IdMappingsToProto(const std::vector<IdMapping>& mappings,
                       google::protobuf::RepeatedPtrField<v1::IdMapping>* out);
void ConfigToProto(const ContainerConfig& config, v1::ContainerSpec* spec);
void ContainerToProto(const ContainerRecord& record, v1::Container* out);
void ExitToProto(const ExitRecord& exit, absl::string_view error, v1::ExitStatus* out);
void OutputToProto(const LogRecord& record, v1::OutputChunk* out);

}  // namespace nodeagent::runtime
