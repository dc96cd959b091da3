#ifndef CONFAB_CRC32C_H
#define CONFAB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Extends `crc` (0 to start) over `length` bytes with CRC-32C (Castagnoli, reflected 0x82F63B78).
/// Uses the SSE4.2 crc32 instruction when the CPU has it, a slicing table otherwise.
uint32_t confab_crc32c_extend(uint32_t crc, const void *data, size_t length);

/// The portable path alone, so tests can check both paths give the same answers.
uint32_t confab_crc32c_extend_portable(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use.
int confab_crc32c_hardware(void);

#endif
