#include "lm/external_sort.h"

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace speechdecode {

TempFile::TempFile(const std::string& dir) : dir_(dir) {
  std::string name = dir + "/speechdecode-count-XXXXXX";
  fd_ = ::mkstemp(name.data());
  if (fd_ < 0) fail("cannot create a temporary file in");
  ::unlink(name.c_str());
}

TempFile::~TempFile() {
  if (fd_ >= 0) ::close(fd_);
}

void TempFile::append(const void* data, uint64_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n =
        ::pwrite(fd_, p, std::min<uint64_t>(bytes, uint64_t{1} << 30), static_cast<off_t>(size_));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write a temporary file (more disk or a larger memory budget helps) in");
    p += n;
    bytes -= static_cast<uint64_t>(n);
    size_ += static_cast<uint64_t>(n);
  }
}

void TempFile::read(uint64_t offset, void* data, uint64_t bytes) const {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    const ssize_t n =
        ::pread(fd_, p, std::min<uint64_t>(bytes, uint64_t{1} << 30), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot read back a temporary file in");
    p += n;
    bytes -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void TempFile::fail(const std::string& what) const {
  throw std::runtime_error("n-gram counting: " + what + " " + dir_ + ": " + std::strerror(errno));
}

}  // namespace speechdecode
