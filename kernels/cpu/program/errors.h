// The runtime's one error type and the check of a oneDNN call's status: thrown wherever the
// program is built or called, caught at the entry points (program.cpp), which return status 1
// and keep the message for ProgramLastError. The bottom of the runtime's headers: every other
// one may include it, it includes only the oneDNN declarations.
// Part of program.cpp's translation unit.
#pragma once
#include <string>

#include "dnnl_abi.h"

namespace {

struct Error {
  std::string message;
};

void check(dnnl_status_t status, const std::string &what) {
  if (status != dnnl_success) throw Error{what + ": " + dnnl_status2str(status)};
}

}  // namespace
