// Error types thrown by the C++ core.
//
// The core never aborts: bad input raises one of these, and the binding layer turns them
// into speechdecode.errors exceptions (TensorError / InvalidArgumentError are ValueErrors).
#pragma once

#include <stdexcept>
#include <string>

namespace speechdecode {

// An argument (usually an array) that is wrong: names the argument, the expectation and
// what was given, e.g. TensorError("lengths", "values in [0, 50]", "61 at [3]").
class TensorError : public std::invalid_argument {
 public:
  TensorError(std::string argument, std::string expected, std::string actual)
      : std::invalid_argument(argument + ": expected " + expected + ", got " + actual),
        argument_(std::move(argument)),
        expected_(std::move(expected)),
        actual_(std::move(actual)) {}

  const std::string& argument() const { return argument_; }
  const std::string& expected() const { return expected_; }
  const std::string& actual() const { return actual_; }

 private:
  std::string argument_;
  std::string expected_;
  std::string actual_;
};

}  // namespace speechdecode
