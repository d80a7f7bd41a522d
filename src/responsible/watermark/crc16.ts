/**
 * CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection) over a bit sequence, most
 * significant bit first. The robust watermark appends it to the payload so that a decode of an unmarked image,
 * which always yields some bits, is accepted only with probability 2^-16.
 */
export function crc16(bits: readonly number[]): number {
  let crc = 0xffff;
  for (const bit of bits) {
    const top = ((crc >> 15) & 1) ^ (bit & 1);
    crc = (crc << 1) & 0xffff;
    if (top) crc ^= 0x1021;
  }
  return crc;
}

/** The 16 bits of a CRC, most significant first. */
export function crcBits(crc: number): number[] {
  return Array.from({ length: 16 }, (_, i) => (crc >> (15 - i)) & 1);
}
