// File I/O helpers Swift's Glibc module does not expose (O_DIRECT needs _GNU_SOURCE).
#pragma once
// open(path, O_RDONLY | O_DIRECT) where the platform has O_DIRECT; -1 (errno set) where it or the file
// system does not.
int ds_open_direct_readonly(const char *path);
