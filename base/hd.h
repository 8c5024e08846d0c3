// base/hd.h: QT_HD marks functions shared by host C, CUDA device code and the emulator.
#ifndef QTRAIN_QT_HD_H
#define QTRAIN_QT_HD_H
#if defined(__CUDACC__)
#define QT_HD __host__ __device__ __forceinline__
#else
#define QT_HD static inline
#endif
#endif
