#pragma once

// Debian's Abseil 20220623 has no status macros of its own; these are the two every
// function returning absl::Status / absl::StatusOr needs.

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define NA_STATUS_CONCAT_INNER_(a, b) a##b
#define NA_STATUS_CONCAT_(a, b) NA_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define NA_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status na_status_ = (expr);      \
    if (!na_status_.ok()) return na_status_; \
  } while (false)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error.
#define NA_ASSIGN_OR_RETURN(lhs, expr) \
  NA_ASSIGN_OR_RETURN_IMPL_(NA_STATUS_CONCAT_(na_statusor_, __LINE__), lhs, expr)
#define NA_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

namespace nodeagent {

// Prefixes a non-OK status message with what the caller was doing: "prepare rootfs c1: ...".
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace nodeagent
