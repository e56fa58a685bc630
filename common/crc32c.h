/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of log batches and record frames.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise;
 * both give identical results (tests check them against each other).
 */
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continues a CRC: start with crc = 0. crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t crc32c(uint32_t crc, const void *data, size_t size);

/* The portable table path, exposed so tests can compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t size);

#endif /* SLUICE_CRC32C_H */
