// File I/O helpers Swift's Glibc module does not expose (O_DIRECT needs _GNU_SOURCE).
#pragma once
#include <stddef.h>
#include <stdint.h>
// open(path, O_RDONLY | O_DIRECT) where the platform has O_DIRECT (Linux); on macOS open with F_NOCACHE
// and F_RDAHEAD off; -1 (errno set) where the platform or the file system refuses.
int ds_open_direct_readonly(const char *path);
// Drops the file's cached pages in [offset, offset + length) (posix_fadvise DONTNEED); a no-op where the
// platform has no such call (macOS).
int ds_drop_cached(int fd, int64_t offset, int64_t length);
// 64-bit checksum of n bytes, continuing from `h` (start with DS_CHECKSUM_SEED): FNV-1a over 8-byte
// little-endian words (h = (h ^ w) * FNV prime; the tail byte by byte). Each step is a bijection of h
// for a fixed word and the xor differs for a different word, so any change confined to one word
// always changes the result. Finish with ds_checksum_final.
#define DS_CHECKSUM_SEED 0xcbf29ce484222325ull
uint64_t ds_checksum_update(uint64_t h, const void *p, size_t n);
// Avalanche of the running value (every input bit reaches every output bit).
uint64_t ds_checksum_final(uint64_t h);
