# cmake/cuda.cmake: the CUDA backend, built twice from the same sources, and its tests.
# Included at the end of the top-level CMakeLists.txt (after tests/cuemu).
#
#   qtrain_cuda_kernels_emu  kernels/cuda/*.cu compiled as C++17 by the host compiler against
#                       the CPU emulator (tests/cuemu, target cuemu), on the bottom layer
#                       (qtrain_base) alone; tests/cuemu/qt_cuda_compat.h is the compatibility
#                       header the include path selects. qtrain_cuda_emu: the CUDA backend
#                       (host/backends/backend_cuda.c) on those kernels and libqtrain. Also
#                       _asan and _tsan flavours on the emulator's sanitizer runtimes.
#   qtrain_cuda_kernels the same .cu files through nvcc for sm_80 and sm_90
#                       (CMAKE_CUDA_ARCHITECTURES) on libcudart and cuBLASLt, with
#                       kernels/cuda/nvcc/qt_cuda_compat.h selected; qtrain_cuda the backend on
#                       them. Every .cu compile goes through scripts/check_ptxas.sh, which fails
#                       the build when ptxas reports a spill, a stack frame or local memory in any
#                       kernel (logs in <build>/ptxas/). Linked into the `qtrain` program
#                       (QT_HAVE_CUDA: --device cuda).
#   bench_step_emu      `qtrain bench step` (bench/step.h) on qtrain_cuda_emu.
#   tests/cuda/test_cuda_<x>.c  ->  test_cuda_<x>_emu (label emu), test_cuda_<x>_gpu (label gpu,
#                       exit 77 = skipped without a device), and, but for a few listed below,
#                       _asan (emu;asan) and _tsan (emu;tsan) on the emulator's sanitizer runtimes.
#
# Options:
#   QT_CUDA           build any of this when the toolkit is found (default ON)
#   QT_CUDA_GPU       build the nvcc backend and its tests too (default ON; the emulated one is
#                     always built; OFF saves the nvcc compile, e.g. for coverage runs)
#   QT_CUDA_COVERAGE  compile the emulated kernels with --coverage -O0 (scripts/cuda_coverage.sh)
# Nothing here is built when nvcc, the toolkit or the emulator is missing: CPU-only machines
# build and test the rest as before.

option(QT_CUDA "Build the CUDA backend (nvcc and emulated) when the CUDA toolkit is found" ON)
option(QT_CUDA_GPU "Build the nvcc backend and its gpu tests (besides the emulated one)" ON)
option(QT_CUDA_COVERAGE "Compile the emulated CUDA kernels with --coverage (gcov)" OFF)

if(NOT QT_CUDA)
  message(STATUS "qtrain: QT_CUDA is OFF: no CUDA backend")
  return()
endif()
find_program(QT_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH PATH_SUFFIXES bin
  PATHS /usr/local/cuda/bin)
find_package(CUDAToolkit QUIET)
if(NOT QT_NVCC OR NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cublasLt OR NOT QT_CUEMU_FOUND
   OR NOT TARGET cuemu)
  message(STATUS "qtrain: CUDA toolkit (nvcc, cudart, cuBLASLt) or the emulator not found: "
                 "no CUDA backend")
  return()
endif()
message(STATUS "qtrain: CUDA ${CUDAToolkit_VERSION} at ${CUDAToolkit_BIN_DIR}")

set(QT_CUDA_TEST_TIMEOUT 300)     # seconds per emulated or device test
set(QT_CUDA_SAN_TEST_TIMEOUT 600) # per sanitizer test (ASan/TSan slow the emulator 3-10x)
# The sanitizer subsets (a CPU memcheck and racecheck of the kernels, tests/cuemu/README.md):
# every test_cuda_* suite except those listed here, so a new kernel's suite is checked too. Sized
# for the CI budget of the whole suite (15 minutes on 2 cores); measured on 2 shared cores,
# each kernel suite takes 0.2-4 s under ASan and 0.4-31 s under TSan. test_cuda_backend takes
# 12 s under ASan but 142 s under TSan, where it adds nothing the kernel suites do not check
# (its host code is single-threaded and every emulated launch is synchronous).
set(QT_CUDA_ASAN_EXCLUDE)
set(QT_CUDA_TSAN_EXCLUDE test_cuda_backend)

file(GLOB QT_CUDA_KERNEL_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu)
set(QT_CUDA_HOST_SOURCES ${CMAKE_SOURCE_DIR}/host/backends/backend_cuda.c)
file(GLOB QT_CUDA_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cuda/test_cuda_*.c)
set(QT_CUDA_TESTUTIL ${CMAKE_SOURCE_DIR}/tests/cuda/cuda_testutil.c)
set(QT_CUDA_TEST_ENV "QT_SOURCE_DIR=${CMAKE_SOURCE_DIR};QT_BINARY_DIR=${CMAKE_BINARY_DIR};OMP_NUM_THREADS=2;QT_CUEMU_THREADS=2")

# ---- emulated backend ----------------------------------------------------------------------
# The .cu files reach the C++ compiler through the emulator's wrapper .cpp files (a source
# file's LANGUAGE is per directory, and the nvcc build needs them as CUDA).
qt_cuemu_cuda_sources(QT_CUDA_EMU_WRAPPERS ${QT_CUDA_KERNEL_SOURCES})

# qt_cuda_add_emu(<suffix> <runtime>): qtrain_cuda_emu<suffix> and qt_cuda_testutil_emu<suffix>
# on the emulator runtime <runtime> (cuemu, cuemu_asan, cuemu_tsan), which brings -DQT_CUEMU,
# C++17, the include paths and the sanitizer flags to every source, C included.
function(qt_cuda_add_emu suffix runtime)
  set(klib qtrain_cuda_kernels_emu${suffix})
  add_library(${klib} STATIC ${QT_CUDA_EMU_WRAPPERS})
  target_include_directories(${klib} PUBLIC ${CMAKE_SOURCE_DIR} PRIVATE ${CBLAS_INCLUDE_DIR})
  # OpenBLAS: the emulated cuBLASLt GEMM is the CPU sgemm.
  target_link_libraries(${klib} PUBLIC ${runtime} qtrain_base ${OPENBLAS_LIB})
  set_target_properties(${klib} PROPERTIES CXX_EXTENSIONS OFF LINKER_LANGUAGE CXX)
  set(lib qtrain_cuda_emu${suffix})
  add_library(${lib} STATIC ${QT_CUDA_HOST_SOURCES})
  target_include_directories(${lib} PUBLIC ${CMAKE_SOURCE_DIR}/include
    PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${lib} PUBLIC ${klib} libqtrain)
  set_target_properties(${lib} PROPERTIES CXX_EXTENSIONS OFF LINKER_LANGUAGE CXX)
  # No a*b + c contracted into an fma. g++ contracts by default for C++ (-std=c++17 too) at
  # -march=native; the CPU reference (ISO C11) never does, and the kernels that must match it
  # bit for bit use the _rn intrinsics, which nvcc never contracts (its default --fmad=true
  # contracts only plain float math, which those kernels' tests tolerate). Emulated, the
  # intrinsics are plain a * b and a + b, so without this flag g++ would fuse them.
  target_compile_options(${klib} PRIVATE -ffp-contract=off)
  target_compile_options(${lib} PRIVATE -ffp-contract=off)
  if(QT_CUDA_COVERAGE AND suffix STREQUAL "")
    # Only the kernels are measured; -O0 keeps lines countable.
    target_compile_options(${klib} PRIVATE --coverage -O0)
    target_link_options(${klib} INTERFACE --coverage)
  endif()
  add_library(qt_cuda_testutil_emu${suffix} STATIC ${QT_CUDA_TESTUTIL})
  target_include_directories(qt_cuda_testutil_emu${suffix} PUBLIC ${CMAKE_SOURCE_DIR}/tests/cuda
    ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR} ${CHECK_INCLUDE_DIRS})
  target_link_libraries(qt_cuda_testutil_emu${suffix} PUBLIC ${runtime})
endfunction()

qt_cuda_add_emu("" cuemu)
# bench_step_emu: `qtrain bench step` (bench/step.h) on the emulated backend: the record-only
# prediction where no nvcc backend is built, and --execute to run a small config's step on the
# emulator.
set(QT_STEP_SOURCES ${CMAKE_SOURCE_DIR}/bench/step.c ${CMAKE_SOURCE_DIR}/bench/step_model.c
    ${CMAKE_SOURCE_DIR}/bench/step_run.c)
add_executable(bench_step_emu ${CMAKE_SOURCE_DIR}/bench/step_emu.c ${QT_STEP_SOURCES}
  ${CMAKE_SOURCE_DIR}/host/cli/args.c)
target_include_directories(bench_step_emu PRIVATE ${CMAKE_SOURCE_DIR})
target_compile_definitions(bench_step_emu PRIVATE QT_HAVE_CUDA)
target_link_libraries(bench_step_emu PRIVATE qtrain_cuda_emu)
set_target_properties(bench_step_emu PROPERTIES LINKER_LANGUAGE CXX)
# Its command line: a record-only step of the tiny preset prints the JSON summary (with the
# launches per micro-step and the predicted MFU), --execute runs it on the emulator with the
# same counts, and an unknown GPU is one error naming the valid ones. The records themselves
# are checked by test_cuda_cost_model. 76 launches per micro-step: a change to the step's schedule
# (a fused op, a split kernel) changes it, and this number with it, on purpose.
add_test(NAME bench_step_emu_predict
  COMMAND bench_step_emu --config ${CMAKE_SOURCE_DIR}/configs/tiny.conf --json --top 0)
add_test(NAME bench_step_emu_execute COMMAND bench_step_emu --config
  ${CMAKE_SOURCE_DIR}/configs/tiny.conf --execute --gpu h100 --json --top 0)
set_tests_properties(bench_step_emu_predict bench_step_emu_execute PROPERTIES LABELS emu
  ENVIRONMENT "${QT_CUDA_TEST_ENV}" TIMEOUT 120
  PASS_REGULAR_EXPRESSION "\"micro_step\":{\"launches\":76,[^\n]*\"predicted_mfu\":0\\.[0-9]")
add_test(NAME bench_step_emu_bad_gpu COMMAND bench_step_emu --gpu v100)
set_tests_properties(bench_step_emu_bad_gpu PROPERTIES LABELS emu TIMEOUT 60
  PASS_REGULAR_EXPRESSION "error: --gpu v100 is not a GPU of the cost model; use one of a100")
if(TARGET cuemu_asan)
  qt_cuda_add_emu(_asan cuemu_asan)
endif()
if(TARGET cuemu_tsan)
  qt_cuda_add_emu(_tsan cuemu_tsan)
endif()

# ---- nvcc backend --------------------------------------------------------------------------
set(QT_CUDA_GPU_BUILT OFF)
if(QT_CUDA_GPU)
  find_package(Python3 COMPONENTS Interpreter)
  include(CheckLanguage)
  # check_language tries nvcc in a scratch project first, so a toolkit that cannot compile
  # (e.g. an unsupported host compiler) leaves the emulated build working.
  if(NOT DEFINED CMAKE_CUDA_COMPILER)
    set(ENV{CUDACXX} ${QT_NVCC})
    if(NOT DEFINED CMAKE_CUDA_HOST_COMPILER)
      set(ENV{CUDAHOSTCXX} ${CMAKE_CXX_COMPILER})
    endif()
  endif()
  check_language(CUDA)
  if(NOT Python3_Interpreter_FOUND)
    message(STATUS "qtrain: python3 not found (the ptxas check needs it): no nvcc backend")
  elseif(NOT CMAKE_CUDA_COMPILER)
    message(STATUS "qtrain: nvcc cannot compile here: no nvcc backend (emulated one only)")
  else()
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90) # A100, H100
    endif()
    enable_language(CUDA)
    # Every target linking CUDA objects gets the libcudart.so of CUDA::cudart, not also a
    # static copy (CMake's default adds -lcudart_static to them).
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    set(QT_CUDA_GPU_BUILT ON)
  endif()
endif()

if(QT_CUDA_GPU_BUILT)
  set(QT_PTXAS_LOG_DIR ${CMAKE_BINARY_DIR}/ptxas)
  add_library(qtrain_cuda_kernels STATIC ${QT_CUDA_KERNEL_SOURCES})
  # kernels/cuda/nvcc first: its qt_cuda_compat.h is the nvcc build's.
  target_include_directories(qtrain_cuda_kernels PRIVATE ${CMAKE_SOURCE_DIR}/kernels/cuda/nvcc
    PUBLIC ${CMAKE_SOURCE_DIR})
  target_link_libraries(qtrain_cuda_kernels PUBLIC qtrain_base CUDA::cudart CUDA::cublasLt)
  set_target_properties(qtrain_cuda_kernels PROPERTIES CUDA_STANDARD 17
    CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF LINKER_LANGUAGE CXX
    CUDA_COMPILER_LAUNCHER "sh;${CMAKE_SOURCE_DIR}/scripts/check_ptxas.sh;${Python3_EXECUTABLE};${CMAKE_SOURCE_DIR}/tests/cuemu/check_ptxas.py;${QT_PTXAS_LOG_DIR}")
  # The directory's -Wall -Wextra -Werror are host-compiler flags nvcc rejects: replace them
  # (nvcc passes them on to the host compiler and treats its own warnings as errors).
  set_property(TARGET qtrain_cuda_kernels PROPERTY COMPILE_OPTIONS "")
  target_compile_options(qtrain_cuda_kernels PRIVATE
    -Xcompiler=-Wall,-Wextra,-Werror -Werror=all-warnings)
  add_library(qtrain_cuda STATIC ${QT_CUDA_HOST_SOURCES})
  target_include_directories(qtrain_cuda PUBLIC ${CMAKE_SOURCE_DIR}/include
    PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(qtrain_cuda PUBLIC qtrain_cuda_kernels libqtrain CUDA::cudart)
  set_target_properties(qtrain_cuda PROPERTIES LINKER_LANGUAGE CXX)

  # The program's --device cuda|auto (host/cli/device.c): the nvcc backend where it is built.
  # Without a driver, qt_cuda_device_count() is 0 and auto falls back to the CPU.
  target_link_libraries(qtrain PRIVATE qtrain_cuda)
  target_compile_definitions(qtrain PRIVATE QT_HAVE_CUDA)
  set_target_properties(qtrain PROPERTIES LINKER_LANGUAGE CXX CUDA_RUNTIME_LIBRARY Shared)

  add_library(qt_cuda_testutil_gpu STATIC ${QT_CUDA_TESTUTIL})
  target_include_directories(qt_cuda_testutil_gpu PUBLIC ${CMAKE_SOURCE_DIR}/tests/cuda
    ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR} ${CHECK_INCLUDE_DIRS})
  target_link_libraries(qt_cuda_testutil_gpu PUBLIC CUDA::cudart)

  # The ptxas report of every kernel file for every architecture, as a test (the build already
  # failed on any spill; this lists registers, shared memory and stack per kernel).
  set(ptxas_logs)
  foreach(src ${QT_CUDA_KERNEL_SOURCES})
    file(STRINGS ${src} kernel_lines REGEX "^[^/]*__global__")
    if(kernel_lines)
      get_filename_component(name ${src} NAME)
      list(APPEND ptxas_logs ${QT_PTXAS_LOG_DIR}/${name}.log)
    endif()
  endforeach()
  if(ptxas_logs)
    add_test(NAME cuda_ptxas_report
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/cuemu/check_ptxas.py --log
              ${ptxas_logs})
    set_tests_properties(cuda_ptxas_report PROPERTIES LABELS nvcc TIMEOUT 60)
  endif()
endif()

# ---- tests ---------------------------------------------------------------------------------
# qt_cuda_add_test(<src> <flavour>): flavour emu, asan, tsan (emulated) or gpu (nvcc).
function(qt_cuda_add_test src flavour)
  get_filename_component(name ${src} NAME_WE)
  set(exe ${name}_${flavour})
  set(env ${QT_CUDA_TEST_ENV})
  set(timeout ${QT_CUDA_TEST_TIMEOUT})
  if(flavour STREQUAL emu)
    set(libs qtrain_cuda_emu qt_cuda_testutil_emu)
    set(labels emu)
  elseif(flavour STREQUAL asan)
    set(libs qtrain_cuda_emu_asan qt_cuda_testutil_emu_asan)
    set(labels "emu;asan")
    # CK_FORK=no: ASan and Check's fork per test case do not mix well.
    list(APPEND env "CK_FORK=no" "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
         "UBSAN_OPTIONS=print_stacktrace=1")
    set(timeout ${QT_CUDA_SAN_TEST_TIMEOUT})
  elseif(flavour STREQUAL tsan)
    set(libs qtrain_cuda_emu_tsan qt_cuda_testutil_emu_tsan)
    set(labels "emu;tsan")
    # One OpenMP thread: libgomp is not instrumented, so its synchronisation is invisible to
    # TSan; the threads under test are the emulator's.
    list(APPEND env "CK_FORK=no" "OMP_NUM_THREADS=1" "TSAN_OPTIONS=halt_on_error=1")
    set(timeout ${QT_CUDA_SAN_TEST_TIMEOUT})
  else()
    set(libs qtrain_cuda qt_cuda_testutil_gpu)
    set(labels gpu)
  endif()
  add_executable(${exe} ${src})
  target_include_directories(${exe} PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/host
    ${CMAKE_SOURCE_DIR}/tests/cuda)
  target_link_libraries(${exe} PRIVATE ${libs} qt_testutil)
  if(name STREQUAL test_cuda_cost_model)
    # The cost model's suite runs whole steps through bench/step_run.c and step_model.c; on the
    # emulator it also counts the launches the runtime really receives, through the linker's
    # --wrap of the emulator's launch, memset, copy and synchronize entry points.
    target_sources(${exe} PRIVATE ${CMAKE_SOURCE_DIR}/bench/step_model.c
      ${CMAKE_SOURCE_DIR}/bench/step_run.c)
    if(NOT flavour STREQUAL gpu)
      target_link_options(${exe} PRIVATE
        -Wl,--wrap=_ZN5cuemu6detail6launchERKNS0_11launch_descE -Wl,--wrap=cudaMemsetAsync
        -Wl,--wrap=cudaMemcpyAsync -Wl,--wrap=cudaStreamSynchronize)
      target_compile_definitions(${exe} PRIVATE QT_CT_COUNT_LAUNCHES)
    endif()
  endif()
  set_target_properties(${exe} PROPERTIES LINKER_LANGUAGE CXX)
  add_test(NAME ${exe} COMMAND ${exe})
  set_tests_properties(${exe} PROPERTIES LABELS "${labels}" ENVIRONMENT "${env}"
    TIMEOUT ${timeout})
  if(flavour STREQUAL gpu)
    set_tests_properties(${exe} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endfunction()

foreach(src ${QT_CUDA_TEST_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  qt_cuda_add_test(${src} emu)
  if(TARGET qtrain_cuda_emu_asan AND NOT name IN_LIST QT_CUDA_ASAN_EXCLUDE)
    qt_cuda_add_test(${src} asan)
  endif()
  if(TARGET qtrain_cuda_emu_tsan AND NOT name IN_LIST QT_CUDA_TSAN_EXCLUDE)
    qt_cuda_add_test(${src} tsan)
  endif()
  if(QT_CUDA_GPU_BUILT)
    qt_cuda_add_test(${src} gpu)
  endif()
endforeach()

# ---- mutations of the int8 mma kernel: the tests must catch them --------------------------
# test_cuda_int8_gemm built with its kernel file compiled again under QT_INT8_GEMM_MUTATION
# (kernels/cuda/int8_gemm.cu): 1 swaps two A fragment registers after ldmatrix, 2 waits for
# one cp.async group too few (a pipeline stage computed before its copies land; the emulator's
# cp.async twin leaves it poisoned). Each test passes only when the suite reports a wrong int32
# from the mma kernel. The mutated object comes first on the link line, so the archive's own
# int8_gemm object is never pulled in.
set(QT_INT8_GEMM_EMU_WRAPPER ${QT_CUDA_EMU_WRAPPERS})
list(FILTER QT_INT8_GEMM_EMU_WRAPPER INCLUDE REGEX "/int8_gemm[^/]*$")
foreach(mutation 1 2)
  set(exe test_cuda_int8_gemm_mutation${mutation})
  add_executable(${exe} ${CMAKE_SOURCE_DIR}/tests/cuda/test_cuda_int8_gemm.c
    ${QT_INT8_GEMM_EMU_WRAPPER})
  target_compile_definitions(${exe} PRIVATE QT_INT8_GEMM_MUTATION=${mutation})
  target_compile_options(${exe} PRIVATE -ffp-contract=off)
  target_include_directories(${exe} PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/host
    ${CMAKE_SOURCE_DIR}/tests/cuda)
  target_link_libraries(${exe} PRIVATE qtrain_cuda_emu qt_cuda_testutil_emu qt_testutil)
  set_target_properties(${exe} PROPERTIES LINKER_LANGUAGE CXX CXX_EXTENSIONS OFF)
  add_test(NAME ${exe} COMMAND ${exe})
  set_tests_properties(${exe} PROPERTIES LABELS emu ENVIRONMENT "${QT_CUDA_TEST_ENV}"
    TIMEOUT ${QT_CUDA_TEST_TIMEOUT}
    PASS_REGULAR_EXPRESSION "test_gemm_exact:0: gemm mma M [0-9]+ N [0-9]+ K [0-9]+ offset 0 seed [0-9]+ c_off 0: C\\[[0-9]+\\]\\[[0-9]+\\] = -?[0-9]+, want -?[0-9]+")
endforeach()

# ---- mutation of the flash attention backward: the test must catch it -----------------------
# test_cuda_attention with kernels/cuda/attention.cu compiled again under QT_ATTENTION_MUTATION=1:
# D by FlashAttention-2's shortcut rowsum(dO * O), wrong under a clip (FLASH_CLIP.md section 2).
# The test must fail (WILL_FAIL), on a clipped or NCS gradient.
set(QT_ATTENTION_EMU_WRAPPER ${QT_CUDA_EMU_WRAPPERS})
list(FILTER QT_ATTENTION_EMU_WRAPPER INCLUDE REGEX "/attention[^/]*$")
add_executable(test_cuda_attention_mutation1 ${CMAKE_SOURCE_DIR}/tests/cuda/test_cuda_attention.c
  ${QT_ATTENTION_EMU_WRAPPER})
target_compile_definitions(test_cuda_attention_mutation1 PRIVATE QT_ATTENTION_MUTATION=1)
target_compile_options(test_cuda_attention_mutation1 PRIVATE -ffp-contract=off)
target_include_directories(test_cuda_attention_mutation1 PRIVATE ${CMAKE_SOURCE_DIR}
  ${CMAKE_SOURCE_DIR}/host ${CMAKE_SOURCE_DIR}/tests/cuda)
target_link_libraries(test_cuda_attention_mutation1 PRIVATE qtrain_cuda_emu qt_cuda_testutil_emu
  qt_testutil)
set_target_properties(test_cuda_attention_mutation1 PROPERTIES LINKER_LANGUAGE CXX CXX_EXTENSIONS OFF)
add_test(NAME test_cuda_attention_mutation1 COMMAND test_cuda_attention_mutation1)
set_tests_properties(test_cuda_attention_mutation1 PROPERTIES LABELS emu
  ENVIRONMENT "${QT_CUDA_TEST_ENV}" TIMEOUT ${QT_CUDA_TEST_TIMEOUT}
  PASS_REGULAR_EXPRESSION "(clipped|ncs)[^\n]*: dqkv error")

# ---- benchmarks: the CUDA runners of `qtrain bench --device cuda` ----------------------------
# The top-level CMakeLists.txt built qtrain_bench (bench/: harness, registry, the families) on
# libqtrain alone, where --device cuda is refused. With the nvcc backend the families' CUDA
# runners (under QT_HAVE_CUDA) and the harness's CUDA side (bench/harness_cuda.c: event timing,
# the GEMM peak and copy bandwidth) are compiled in and linked with the nvcc kernels; never the
# emulated ones, whose times would mean nothing. test_cli_bench_gpu (label gpu) runs every
# family on the device, and reports itself skipped (77) where there is none. bench/step_run.c:
# the training step of `qtrain bench step`, measured on a device, recorded without one.
if(QT_CUDA_GPU_BUILT AND TARGET qtrain_bench)
  target_sources(qtrain_bench PRIVATE ${CMAKE_SOURCE_DIR}/bench/harness_cuda.c
    ${CMAKE_SOURCE_DIR}/bench/step_run.c)
  target_compile_definitions(qtrain_bench PRIVATE QT_HAVE_CUDA)
  target_link_libraries(qtrain_bench PUBLIC qtrain_cuda CUDA::cudart)
  # Made before enable_language(CUDA) set the architectures: give it the build's.
  set_target_properties(qtrain_bench PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  set_target_properties(bench_ops PROPERTIES LINKER_LANGUAGE CXX CUDA_RUNTIME_LIBRARY Shared)
  if(TARGET test_cli_bench)
    add_test(NAME test_cli_bench_gpu COMMAND test_cli_bench --cuda)
    set_tests_properties(test_cli_bench_gpu PROPERTIES LABELS gpu SKIP_RETURN_CODE 77
      ENVIRONMENT "${QT_CUDA_TEST_ENV}" TIMEOUT ${QT_CUDA_TEST_TIMEOUT})
  endif()
endif()
