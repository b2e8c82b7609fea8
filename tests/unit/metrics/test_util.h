#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace nodeagent::metrics {

inline std::string Fixture(const std::string& relative) {
  return std::string(METRICS_FIXTURES_DIR) + "/" + relative;
}

inline std::string ReadFixture(const std::string& relative) {
  std::ifstream in(Fixture(relative));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace nodeagent::metrics
