// Error types thrown by the C++ core.
//
// The core never aborts: bad input raises one of these, and the binding layer turns them
// into speechdecode.errors exceptions (TensorError / InvalidArgumentError are ValueErrors).
#pragma once

#include <cstdint>
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

// A file that cannot be used: names the file and, where it applies, the 1-based line, e.g.
// InputFileError("corpus.txt", 12, "invalid UTF-8 ..."). line < 0: the file as a whole.
// The bindings turn it into speechdecode.errors.InputFileError (a ValueError).
class InputFileError : public std::runtime_error {
 public:
  InputFileError(std::string path, int64_t line, std::string detail)
      : std::runtime_error((line < 0 ? path : path + ":" + std::to_string(line)) + ": " + detail),
        path_(std::move(path)),
        line_(line),
        detail_(std::move(detail)) {}

  const std::string& path() const { return path_; }
  int64_t line() const { return line_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string path_;
  int64_t line_;
  std::string detail_;
};

}  // namespace speechdecode
