//go:build !noasm && gc

#include "textflag.h"

// AVX2+FMA distance kernels. Go declarations and the exactness argument for
// the integer kernels are in kernels_amd64.go.
//
// Each kernel is written once as a "row" macro that computes one distance,
// and then instantiated twice: a single-pair function and a batched function
// that runs the macro over consecutive rows of data (so the batch pays no
// per-row call overhead). Labels are local to a TEXT block, so each macro is
// used at most once per function.
//
// Row macro register contract:
//   in:  SI = a (or query), DI = b (or data row), CX = element count
//   out: X0 (float kernels, the float32 result in lane 0)
//        AX (integer kernels, the 32-bit result)
//   clobbers: SI, DI, CX, R8, R13, Y0-Y11 (X12 is free for the batch loops)
//   Y13 = 0x80 in every byte (int8 bias), Y14 = 0x00ff in every word; they
//   are loaded by the functions that need them, never written by the macros.
// Batched functions additionally use BX (rows left), DX (out pointer),
// R9 (current data row), R10 (query), R11 (dimension), R12 (row stride).
// BP, R14 and R15 are never touched.

// tailMask<>: eight int32 -1 followed by eight 0. Loading 32 bytes at
// offset 32-4k yields a VMASKMOVPS mask selecting the first k lanes.
DATA tailMask<>+0(SB)/8, $0xffffffffffffffff
DATA tailMask<>+8(SB)/8, $0xffffffffffffffff
DATA tailMask<>+16(SB)/8, $0xffffffffffffffff
DATA tailMask<>+24(SB)/8, $0xffffffffffffffff
DATA tailMask<>+32(SB)/8, $0
DATA tailMask<>+40(SB)/8, $0
DATA tailMask<>+48(SB)/8, $0
DATA tailMask<>+56(SB)/8, $0
GLOBL tailMask<>(SB), RODATA|NOPTR, $64

// bias80<>: 0x80 in every byte; XOR maps int8 x to uint8 x+128.
DATA bias80<>+0(SB)/8, $0x8080808080808080
DATA bias80<>+8(SB)/8, $0x8080808080808080
DATA bias80<>+16(SB)/8, $0x8080808080808080
DATA bias80<>+24(SB)/8, $0x8080808080808080
GLOBL bias80<>(SB), RODATA|NOPTR, $32

// lowBytes<>: 0x00ff in every 16-bit word; AND keeps the even bytes of a
// vector as zero-extended words.
DATA lowBytes<>+0(SB)/8, $0x00ff00ff00ff00ff
DATA lowBytes<>+8(SB)/8, $0x00ff00ff00ff00ff
DATA lowBytes<>+16(SB)/8, $0x00ff00ff00ff00ff
DATA lowBytes<>+24(SB)/8, $0x00ff00ff00ff00ff
GLOBL lowBytes<>(SB), RODATA|NOPTR, $32

// ---------------------------------------------------------------------------
// Shared pieces.

// HSUM_PS leaves the sum of the eight float32 lanes of Y0 in X0 lane 0.
#define HSUM_PS \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS       X1, X0, X0; \
	VMOVHLPS     X0, X0, X1; \
	VADDPS       X1, X0, X0; \
	VMOVSHDUP    X0, X1;     \
	VADDSS       X1, X0, X0

// HSUM_D leaves the (wrapping) sum of the eight int32 lanes of Y0 in AX.
#define HSUM_D \
	VEXTRACTI128 $1, Y0, X1;  \
	VPADDD       X1, X0, X0;  \
	VPSHUFD      $0x4e, X0, X1; \
	VPADDD       X1, X0, X0;  \
	VPSHUFD      $0xb1, X0, X1; \
	VPADDD       X1, X0, X0;  \
	VMOVD        X0, AX

// FLOAT_TAIL_MASK loads into Y8 the mask selecting the first CX (< 8) lanes.
#define FLOAT_TAIL_MASK \
	LEAQ    tailMask<>+32(SB), R8; \
	SHLQ    $2, CX;                \
	SUBQ    CX, R8;                \
	VMOVDQU (R8), Y8

// ---------------------------------------------------------------------------
// float32 squared L2: four independent 8-lane FMA accumulators over 32
// elements per iteration, then 8 at a time, then a masked load for the last
// 0..7 elements (masked-off lanes read as zero and never fault).

#define L2F32_ROW \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	CMPQ   CX, $32;    \
	JB     l2f32_by8;  \
l2f32_by32: \
	VMOVUPS     (SI), Y4;    \
	VMOVUPS     32(SI), Y5;  \
	VMOVUPS     64(SI), Y6;  \
	VMOVUPS     96(SI), Y7;  \
	VSUBPS      (DI), Y4, Y4;   \
	VSUBPS      32(DI), Y5, Y5; \
	VSUBPS      64(DI), Y6, Y6; \
	VSUBPS      96(DI), Y7, Y7; \
	VFMADD231PS Y4, Y4, Y0; \
	VFMADD231PS Y5, Y5, Y1; \
	VFMADD231PS Y6, Y6, Y2; \
	VFMADD231PS Y7, Y7, Y3; \
	ADDQ        $128, SI;   \
	ADDQ        $128, DI;   \
	SUBQ        $32, CX;    \
	CMPQ        CX, $32;    \
	JAE         l2f32_by32; \
l2f32_by8: \
	CMPQ        CX, $8;         \
	JB          l2f32_tail;     \
	VMOVUPS     (SI), Y4;       \
	VSUBPS      (DI), Y4, Y4;   \
	VFMADD231PS Y4, Y4, Y0;     \
	ADDQ        $32, SI;        \
	ADDQ        $32, DI;        \
	SUBQ        $8, CX;         \
	JMP         l2f32_by8;      \
l2f32_tail: \
	TESTQ       CX, CX;         \
	JZ          l2f32_sum;      \
	FLOAT_TAIL_MASK;            \
	VMASKMOVPS  (SI), Y8, Y4;   \
	VMASKMOVPS  (DI), Y8, Y5;   \
	VSUBPS      Y5, Y4, Y4;     \
	VFMADD231PS Y4, Y4, Y1;     \
l2f32_sum: \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	HSUM_PS

// func l2F32AVX2(a, b []float32) float32
TEXT ·l2F32AVX2(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	CMPQ b_len+32(FP), CX
	JB   short
	MOVQ b_base+24(FP), DI
	L2F32_ROW
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

short:
	// len(b) < len(a): let the reference decide (it reslices b to len(a),
	// which panics unless cap(b) allows it).
	JMP ·L2F32Go(SB)

// func l2F32BatchAVX2(q, data, out []float32)
TEXT ·l2F32BatchAVX2(SB), NOSPLIT, $0-72
	MOVQ q_base+0(FP), R10
	MOVQ q_len+8(FP), R11
	MOVQ data_base+24(FP), R9
	MOVQ out_base+48(FP), DX
	MOVQ out_len+56(FP), BX
	MOVQ R11, R12
	SHLQ $2, R12
	TESTQ BX, BX
	JZ   l2f32b_done

l2f32b_row:
	MOVQ R10, SI
	MOVQ R9, DI
	MOVQ R11, CX
	L2F32_ROW
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R12, R9
	DECQ BX
	JNZ  l2f32b_row

l2f32b_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// float32 dot product: same structure as L2F32_ROW with FMA of a*b.

#define DOTF32_ROW \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	CMPQ   CX, $32;    \
	JB     dotf32_by8; \
dotf32_by32: \
	VMOVUPS     (SI), Y4;        \
	VMOVUPS     32(SI), Y5;      \
	VMOVUPS     64(SI), Y6;      \
	VMOVUPS     96(SI), Y7;      \
	VFMADD231PS (DI), Y4, Y0;    \
	VFMADD231PS 32(DI), Y5, Y1;  \
	VFMADD231PS 64(DI), Y6, Y2;  \
	VFMADD231PS 96(DI), Y7, Y3;  \
	ADDQ        $128, SI;        \
	ADDQ        $128, DI;        \
	SUBQ        $32, CX;         \
	CMPQ        CX, $32;         \
	JAE         dotf32_by32;     \
dotf32_by8: \
	CMPQ        CX, $8;          \
	JB          dotf32_tail;     \
	VMOVUPS     (SI), Y4;        \
	VFMADD231PS (DI), Y4, Y0;    \
	ADDQ        $32, SI;         \
	ADDQ        $32, DI;         \
	SUBQ        $8, CX;          \
	JMP         dotf32_by8;      \
dotf32_tail: \
	TESTQ       CX, CX;          \
	JZ          dotf32_sum;      \
	FLOAT_TAIL_MASK;             \
	VMASKMOVPS  (SI), Y8, Y4;    \
	VMASKMOVPS  (DI), Y8, Y5;    \
	VFMADD231PS Y5, Y4, Y1;      \
dotf32_sum: \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	HSUM_PS

// func dotF32AVX2(a, b []float32) float32
TEXT ·dotF32AVX2(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	CMPQ b_len+32(FP), CX
	JB   short
	MOVQ b_base+24(FP), DI
	DOTF32_ROW
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

short:
	// len(b) < len(a): let the reference decide (it reslices b to len(a),
	// which panics unless cap(b) allows it).
	JMP ·DotF32Go(SB)

// func dotF32BatchAVX2(q, data, out []float32)
TEXT ·dotF32BatchAVX2(SB), NOSPLIT, $0-72
	MOVQ q_base+0(FP), R10
	MOVQ q_len+8(FP), R11
	MOVQ data_base+24(FP), R9
	MOVQ out_base+48(FP), DX
	MOVQ out_len+56(FP), BX
	MOVQ R11, R12
	SHLQ $2, R12
	TESTQ BX, BX
	JZ   dotf32b_done

dotf32b_row:
	MOVQ R10, SI
	MOVQ R9, DI
	MOVQ R11, CX
	DOTF32_ROW
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R12, R9
	DECQ BX
	JNZ  dotf32b_row

dotf32b_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// uint8 / int8 squared L2.
//
// For bytes a, b the absolute difference |a-b| (0..255) is
// subus(a,b) | subus(b,a). Its even bytes (AND 0x00ff) and odd bytes (shift
// right by 8) are zero-extended to 16-bit words, and VPMADDWD squares and adds
// adjacent words into int32 lanes: at most 2·255² = 130050 per lane per step.
// int8 vectors are first XORed with 0x80, which adds 128 to both operands
// and leaves every difference unchanged.
//
// SQDIFF_U8 accumulates the squared differences of the bytes of Y4 and Y5
// into Y0 (even bytes) and Y1 (odd bytes). Bytes that are zero in both
// operands contribute nothing, which is what makes the 16- and 8-byte steps
// (loads that zero the rest of the register) correct.
#define SQDIFF_U8 \
	VPSUBUSB Y5, Y4, Y6;  \
	VPSUBUSB Y4, Y5, Y7;  \
	VPOR     Y7, Y6, Y6;  \
	VPAND    Y14, Y6, Y7; \
	VPSRLW   $8, Y6, Y6;  \
	VPMADDWD Y7, Y7, Y7;  \
	VPMADDWD Y6, Y6, Y6;  \
	VPADDD   Y7, Y0, Y0;  \
	VPADDD   Y6, Y1, Y1

// Same for a second pair of registers (Y8, Y9) into Y2, Y3, so the 64-byte
// loop has two independent chains.
#define SQDIFF_U8_B \
	VPSUBUSB Y9, Y8, Y10;   \
	VPSUBUSB Y8, Y9, Y11;   \
	VPOR     Y11, Y10, Y10; \
	VPAND    Y14, Y10, Y11; \
	VPSRLW   $8, Y10, Y10;  \
	VPMADDWD Y11, Y11, Y11; \
	VPMADDWD Y10, Y10, Y10; \
	VPADDD   Y11, Y2, Y2;   \
	VPADDD   Y10, Y3, Y3

// NOBIAS / BIAS45 / BIAS89 are the per-load fix-ups: nothing for uint8, XOR
// 0x80 for int8.
#define NOBIAS
#define BIAS45 \
	VPXOR Y13, Y4, Y4; \
	VPXOR Y13, Y5, Y5
#define BIAS89 \
	VPXOR Y13, Y8, Y8; \
	VPXOR Y13, Y9, Y9

// L2_BYTES_ROW(BIAS_A, BIAS_B, LOADB) is the row macro for uint8 (LOADB =
// MOVBLZX) and int8 (LOADB = MOVBLSX) squared L2.
// The scalar tail handles the last 0..7 bytes in general registers.
#define L2_BYTES_ROW(BIAS_A, BIAS_B, LOADB) \
	VPXOR  Y0, Y0, Y0; \
	VPXOR  Y1, Y1, Y1; \
	VPXOR  Y2, Y2, Y2; \
	VPXOR  Y3, Y3, Y3; \
	CMPQ   CX, $64;    \
	JB     l2b_by32;   \
l2b_by64: \
	VMOVDQU (SI), Y4;   \
	VMOVDQU (DI), Y5;   \
	VMOVDQU 32(SI), Y8; \
	VMOVDQU 32(DI), Y9; \
	BIAS_A;             \
	BIAS_B;             \
	SQDIFF_U8;          \
	SQDIFF_U8_B;        \
	ADDQ    $64, SI;    \
	ADDQ    $64, DI;    \
	SUBQ    $64, CX;    \
	CMPQ    CX, $64;    \
	JAE     l2b_by64;   \
l2b_by32: \
	CMPQ    CX, $32;    \
	JB      l2b_by16;   \
	VMOVDQU (SI), Y4;   \
	VMOVDQU (DI), Y5;   \
	BIAS_A;             \
	SQDIFF_U8;          \
	ADDQ    $32, SI;    \
	ADDQ    $32, DI;    \
	SUBQ    $32, CX;    \
l2b_by16: \
	CMPQ    CX, $16;    \
	JB      l2b_by8;    \
	VMOVDQU (SI), X4;   \
	VMOVDQU (DI), X5;   \
	BIAS_A;             \
	SQDIFF_U8;          \
	ADDQ    $16, SI;    \
	ADDQ    $16, DI;    \
	SUBQ    $16, CX;    \
l2b_by8: \
	CMPQ    CX, $8;     \
	JB      l2b_sum;    \
	VMOVQ   (SI), X4;   \
	VMOVQ   (DI), X5;   \
	BIAS_A;             \
	SQDIFF_U8;          \
	ADDQ    $8, SI;     \
	ADDQ    $8, DI;     \
	SUBQ    $8, CX;     \
l2b_sum: \
	VPADDD  Y1, Y0, Y0; \
	VPADDD  Y3, Y2, Y2; \
	VPADDD  Y2, Y0, Y0; \
	HSUM_D;             \
	TESTQ   CX, CX;     \
	JZ      l2b_done;   \
l2b_tail: \
	LOADB   (SI), R8;   \
	LOADB   (DI), R13;  \
	SUBL    R13, R8;    \
	IMULL   R8, R8;     \
	ADDL    R8, AX;     \
	INCQ    SI;         \
	INCQ    DI;         \
	DECQ    CX;         \
	JNZ     l2b_tail;   \
l2b_done:

// func l2U8AVX2(a, b []uint8) uint32
TEXT ·l2U8AVX2(SB), NOSPLIT, $0-52
	MOVQ    a_base+0(FP), SI
	MOVQ    a_len+8(FP), CX
	CMPQ b_len+32(FP), CX
	JB   short
	MOVQ    b_base+24(FP), DI
	VMOVDQU lowBytes<>(SB), Y14
	L2_BYTES_ROW(NOBIAS, NOBIAS, MOVBLZX)
	MOVL    AX, ret+48(FP)
	VZEROUPPER
	RET

short:
	// len(b) < len(a): let the reference decide (it reslices b to len(a),
	// which panics unless cap(b) allows it).
	JMP ·L2U8Go(SB)

// func l2U8BatchAVX2(q, data []uint8, out []float32)
TEXT ·l2U8BatchAVX2(SB), NOSPLIT, $0-72
	MOVQ    q_base+0(FP), R10
	MOVQ    q_len+8(FP), R11
	MOVQ    data_base+24(FP), R9
	MOVQ    out_base+48(FP), DX
	MOVQ    out_len+56(FP), BX
	VMOVDQU lowBytes<>(SB), Y14
	VXORPS  X12, X12, X12
	TESTQ   BX, BX
	JZ      l2u8b_done

l2u8b_row:
	MOVQ       R10, SI
	MOVQ       R9, DI
	MOVQ       R11, CX
	L2_BYTES_ROW(NOBIAS, NOBIAS, MOVBLZX)
	MOVL       AX, AX              // zero-extend: the sum is a uint32
	VCVTSI2SSQ AX, X12, X0
	VMOVSS     X0, (DX)
	ADDQ       $4, DX
	ADDQ       R11, R9
	DECQ       BX
	JNZ        l2u8b_row

l2u8b_done:
	VZEROUPPER
	RET

// func l2I8AVX2(a, b []int8) uint32
TEXT ·l2I8AVX2(SB), NOSPLIT, $0-52
	MOVQ    a_base+0(FP), SI
	MOVQ    a_len+8(FP), CX
	CMPQ b_len+32(FP), CX
	JB   short
	MOVQ    b_base+24(FP), DI
	VMOVDQU lowBytes<>(SB), Y14
	VMOVDQU bias80<>(SB), Y13
	L2_BYTES_ROW(BIAS45, BIAS89, MOVBLSX)
	MOVL    AX, ret+48(FP)
	VZEROUPPER
	RET

short:
	// len(b) < len(a): let the reference decide (it reslices b to len(a),
	// which panics unless cap(b) allows it).
	JMP ·L2I8Go(SB)

// func l2I8BatchAVX2(q, data []int8, out []float32)
TEXT ·l2I8BatchAVX2(SB), NOSPLIT, $0-72
	MOVQ    q_base+0(FP), R10
	MOVQ    q_len+8(FP), R11
	MOVQ    data_base+24(FP), R9
	MOVQ    out_base+48(FP), DX
	MOVQ    out_len+56(FP), BX
	VMOVDQU lowBytes<>(SB), Y14
	VMOVDQU bias80<>(SB), Y13
	VXORPS  X12, X12, X12
	TESTQ   BX, BX
	JZ      l2i8b_done

l2i8b_row:
	MOVQ       R10, SI
	MOVQ       R9, DI
	MOVQ       R11, CX
	L2_BYTES_ROW(BIAS45, BIAS89, MOVBLSX)
	MOVL       AX, AX
	VCVTSI2SSQ AX, X12, X0
	VMOVSS     X0, (DX)
	ADDQ       $4, DX
	ADDQ       R11, R9
	DECQ       BX
	JNZ        l2i8b_row

l2i8b_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// uint8 dot product. Each operand's even bytes (AND 0x00ff) and odd bytes
// (shift right 8) become zero-extended words; VPMADDWD multiplies and adds
// adjacent pairs: at most 2·255² = 130050 per int32 lane per step.

// DOT_U8 accumulates the dot product of the bytes of Y4 and Y5 into Y0, Y1.
#define DOT_U8 \
	VPAND    Y14, Y4, Y6; \
	VPAND    Y14, Y5, Y7; \
	VPSRLW   $8, Y4, Y4;  \
	VPSRLW   $8, Y5, Y5;  \
	VPMADDWD Y7, Y6, Y6;  \
	VPMADDWD Y5, Y4, Y4;  \
	VPADDD   Y6, Y0, Y0;  \
	VPADDD   Y4, Y1, Y1

#define DOT_U8_B \
	VPAND    Y14, Y8, Y10;   \
	VPAND    Y14, Y9, Y11;   \
	VPSRLW   $8, Y8, Y8;     \
	VPSRLW   $8, Y9, Y9;     \
	VPMADDWD Y11, Y10, Y10;  \
	VPMADDWD Y9, Y8, Y8;     \
	VPADDD   Y10, Y2, Y2;    \
	VPADDD   Y8, Y3, Y3

#define DOTU8_ROW \
	VPXOR  Y0, Y0, Y0; \
	VPXOR  Y1, Y1, Y1; \
	VPXOR  Y2, Y2, Y2; \
	VPXOR  Y3, Y3, Y3; \
	CMPQ   CX, $64;    \
	JB     dotu8_by32; \
dotu8_by64: \
	VMOVDQU (SI), Y4;   \
	VMOVDQU (DI), Y5;   \
	VMOVDQU 32(SI), Y8; \
	VMOVDQU 32(DI), Y9; \
	DOT_U8;             \
	DOT_U8_B;           \
	ADDQ    $64, SI;    \
	ADDQ    $64, DI;    \
	SUBQ    $64, CX;    \
	CMPQ    CX, $64;    \
	JAE     dotu8_by64; \
dotu8_by32: \
	CMPQ    CX, $32;    \
	JB      dotu8_by16; \
	VMOVDQU (SI), Y4;   \
	VMOVDQU (DI), Y5;   \
	DOT_U8;             \
	ADDQ    $32, SI;    \
	ADDQ    $32, DI;    \
	SUBQ    $32, CX;    \
dotu8_by16: \
	CMPQ    CX, $16;    \
	JB      dotu8_by8;  \
	VMOVDQU (SI), X4;   \
	VMOVDQU (DI), X5;   \
	DOT_U8;             \
	ADDQ    $16, SI;    \
	ADDQ    $16, DI;    \
	SUBQ    $16, CX;    \
dotu8_by8: \
	CMPQ    CX, $8;     \
	JB      dotu8_sum;  \
	VMOVQ   (SI), X4;   \
	VMOVQ   (DI), X5;   \
	DOT_U8;             \
	ADDQ    $8, SI;     \
	ADDQ    $8, DI;     \
	SUBQ    $8, CX;     \
dotu8_sum: \
	VPADDD  Y1, Y0, Y0; \
	VPADDD  Y3, Y2, Y2; \
	VPADDD  Y2, Y0, Y0; \
	HSUM_D;             \
	TESTQ   CX, CX;     \
	JZ      dotu8_done; \
dotu8_tail: \
	MOVBLZX (SI), R8;   \
	MOVBLZX (DI), R13;  \
	IMULL   R13, R8;    \
	ADDL    R8, AX;     \
	INCQ    SI;         \
	INCQ    DI;         \
	DECQ    CX;         \
	JNZ     dotu8_tail; \
dotu8_done:

// func dotU8AVX2(a, b []uint8) uint32
TEXT ·dotU8AVX2(SB), NOSPLIT, $0-52
	MOVQ    a_base+0(FP), SI
	MOVQ    a_len+8(FP), CX
	CMPQ b_len+32(FP), CX
	JB   short
	MOVQ    b_base+24(FP), DI
	VMOVDQU lowBytes<>(SB), Y14
	DOTU8_ROW
	MOVL    AX, ret+48(FP)
	VZEROUPPER
	RET

short:
	// len(b) < len(a): let the reference decide (it reslices b to len(a),
	// which panics unless cap(b) allows it).
	JMP ·DotU8Go(SB)

// func dotU8BatchAVX2(q, data []uint8, out []float32)
TEXT ·dotU8BatchAVX2(SB), NOSPLIT, $0-72
	MOVQ    q_base+0(FP), R10
	MOVQ    q_len+8(FP), R11
	MOVQ    data_base+24(FP), R9
	MOVQ    out_base+48(FP), DX
	MOVQ    out_len+56(FP), BX
	VMOVDQU lowBytes<>(SB), Y14
	VXORPS  X12, X12, X12
	TESTQ   BX, BX
	JZ      dotu8b_done

dotu8b_row:
	MOVQ       R10, SI
	MOVQ       R9, DI
	MOVQ       R11, CX
	DOTU8_ROW
	MOVL       AX, AX
	VCVTSI2SSQ AX, X12, X0
	VMOVSS     X0, (DX)
	ADDQ       $4, DX
	ADDQ       R11, R9
	DECQ       BX
	JNZ        dotu8b_row

dotu8b_done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// int8 dot product: VPMOVSXBW sign-extends 16 bytes to 16 words, VPMADDWD
// multiplies and adds adjacent pairs: each pair sum lies in
// [-2·128·127, 2·128·128] = [-32512, 32768] per int32 lane per step.

#define DOTI8_ROW \
	VPXOR  Y0, Y0, Y0; \
	VPXOR  Y1, Y1, Y1; \
	VPXOR  Y2, Y2, Y2; \
	VPXOR  Y3, Y3, Y3; \
	CMPQ   CX, $32;    \
	JB     doti8_by16; \
doti8_by32: \
	VPMOVSXBW (SI), Y4;    \
	VPMOVSXBW (DI), Y5;    \
	VPMOVSXBW 16(SI), Y6;  \
	VPMOVSXBW 16(DI), Y7;  \
	VPMADDWD  Y5, Y4, Y4;  \
	VPMADDWD  Y7, Y6, Y6;  \
	VPADDD    Y4, Y0, Y0;  \
	VPADDD    Y6, Y1, Y1;  \
	ADDQ      $32, SI;     \
	ADDQ      $32, DI;     \
	SUBQ      $32, CX;     \
	CMPQ      CX, $32;     \
	JAE       doti8_by32;  \
doti8_by16: \
	CMPQ      CX, $16;     \
	JB        doti8_by8;   \
	VPMOVSXBW (SI), Y4;    \
	VPMOVSXBW (DI), Y5;    \
	VPMADDWD  Y5, Y4, Y4;  \
	VPADDD    Y4, Y2, Y2;  \
	ADDQ      $16, SI;     \
	ADDQ      $16, DI;     \
	SUBQ      $16, CX;     \
doti8_by8: \
	CMPQ      CX, $8;      \
	JB        doti8_sum;   \
	VPMOVSXBW (SI), X4;    \
	VPMOVSXBW (DI), X5;    \
	VPMADDWD  Y5, Y4, Y4;  \
	VPADDD    Y4, Y3, Y3;  \
	ADDQ      $8, SI;      \
	ADDQ      $8, DI;      \
	SUBQ      $8, CX;      \
doti8_sum: \
	VPADDD  Y1, Y0, Y0;  \
	VPADDD  Y3, Y2, Y2;  \
	VPADDD  Y2, Y0, Y0;  \
	HSUM_D;              \
	TESTQ   CX, CX;      \
	JZ      doti8_done;  \
doti8_tail: \
	MOVBLSX (SI), R8;    \
	MOVBLSX (DI), R13;   \
	IMULL   R13, R8;     \
	ADDL    R8, AX;      \
	INCQ    SI;          \
	INCQ    DI;          \
	DECQ    CX;          \
	JNZ     doti8_tail;  \
doti8_done:

// func dotI8AVX2(a, b []int8) int32
TEXT ·dotI8AVX2(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	CMPQ b_len+32(FP), CX
	JB   short
	MOVQ b_base+24(FP), DI
	DOTI8_ROW
	MOVL AX, ret+48(FP)
	VZEROUPPER
	RET

short:
	// len(b) < len(a): let the reference decide (it reslices b to len(a),
	// which panics unless cap(b) allows it).
	JMP ·DotI8Go(SB)

// func dotI8BatchAVX2(q, data []int8, out []float32)
TEXT ·dotI8BatchAVX2(SB), NOSPLIT, $0-72
	MOVQ   q_base+0(FP), R10
	MOVQ   q_len+8(FP), R11
	MOVQ   data_base+24(FP), R9
	MOVQ   out_base+48(FP), DX
	MOVQ   out_len+56(FP), BX
	VXORPS X12, X12, X12
	TESTQ  BX, BX
	JZ     doti8b_done

doti8b_row:
	MOVQ       R10, SI
	MOVQ       R9, DI
	MOVQ       R11, CX
	DOTI8_ROW
	VCVTSI2SSL AX, X12, X0         // signed 32-bit sum
	VMOVSS     X0, (DX)
	ADDQ       $4, DX
	ADDQ       R11, R9
	DECQ       BX
	JNZ        doti8b_row

doti8b_done:
	VZEROUPPER
	RET
