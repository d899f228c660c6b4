/* The minimax polynomial of 2^r on [-0.5, 0.5] shared by the vector 2^x of every ISA
 * (sd_exp2_512 in simd_avx512.h, sd_exp2_256 in simd_avx2.h): degree 5, relative error
 * 2.4e-7 (about 2 float32 ulps). Coefficients from the highest power down. */
#ifndef SD_CORE_SIMD_EXP2_H
#define SD_CORE_SIMD_EXP2_H

#define SD_EXP2_C5 0.0013278163969516754f
#define SD_EXP2_C4 0.009675555862486362f
#define SD_EXP2_C3 0.055507078766822815f
#define SD_EXP2_C2 0.24022118747234344f
#define SD_EXP2_C1 0.6931469440460205f
#define SD_EXP2_C0 1.0000001192092896f

#endif
