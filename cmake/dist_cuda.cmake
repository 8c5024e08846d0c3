# cmake/dist_cuda.cmake: data-parallel training on the CUDA backend (host/dist/comm_nccl.c),
# included after cmake/cuda.cmake and cmake/dist.cmake, whose targets it uses.
#
#   qtrain_nccl       comm_nccl.c against the toolkit's headers and libnccl, wherever both are
#                     found (so every build compiles the NCCL calls); linked into `qtrain` with
#                     QT_HAVE_NCCL where the nvcc backend is built too (--device cuda under
#                     mpirun, srun or torchrun-style launchers)
#   qtrain_nccl_emu   the same file for the emulated backend (QT_CUEMU): its collectives run on
#                     the CPU through the MPI communicator, around the same streams and events
#   test_cuda_dist_mpi_np2, _np3  tests/mpi/test_cuda_dist_mpi.c under mpirun -np 2 and -np 3
#                     (labels mpi, emu): the CUDA data-parallel path in CI, each rank a process
#                     with its own emulated device
if(NOT TARGET qtrain_cuda_emu)
  return()
endif()

find_path(QT_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}/include)
find_library(QT_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib)
if(QT_NCCL_INCLUDE_DIR AND QT_NCCL_LIBRARY)
  message(STATUS "qtrain: NCCL ${QT_NCCL_LIBRARY}")
  add_library(qtrain_nccl STATIC ${CMAKE_SOURCE_DIR}/host/dist/comm_nccl.c)
  target_include_directories(qtrain_nccl PRIVATE ${CMAKE_SOURCE_DIR} ${QT_NCCL_INCLUDE_DIR})
  target_link_libraries(qtrain_nccl PUBLIC libqtrain CUDA::cudart ${QT_NCCL_LIBRARY})
  if(QT_CUDA_GPU_BUILT)
    target_link_libraries(qtrain PRIVATE qtrain_nccl)
    target_compile_definitions(qtrain PRIVATE QT_HAVE_NCCL)
  endif()
else()
  message(STATUS "qtrain: NCCL (nccl.h, libnccl) not found: no data-parallel CUDA training")
endif()

if(NOT TARGET qtrain_mpi OR NOT QT_MPIEXEC)
  return()
endif()
add_library(qtrain_nccl_emu STATIC ${CMAKE_SOURCE_DIR}/host/dist/comm_nccl.c)
target_include_directories(qtrain_nccl_emu PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(qtrain_nccl_emu PUBLIC qtrain_cuda_emu qtrain_mpi)
set_target_properties(qtrain_nccl_emu PROPERTIES LINKER_LANGUAGE CXX)

add_executable(test_cuda_dist_mpi ${CMAKE_SOURCE_DIR}/tests/mpi/test_cuda_dist_mpi.c)
target_include_directories(test_cuda_dist_mpi PRIVATE ${CMAKE_SOURCE_DIR}
  ${CMAKE_SOURCE_DIR}/host)
target_link_libraries(test_cuda_dist_mpi PRIVATE qtrain_nccl_emu qt_mpi_testutil)
set_target_properties(test_cuda_dist_mpi PROPERTIES LINKER_LANGUAGE CXX)
foreach(np 2 3)
  add_test(NAME test_cuda_dist_mpi_np${np}
    COMMAND ${QT_MPIEXEC} -np ${np} --oversubscribe --bind-to none
            $<TARGET_FILE:test_cuda_dist_mpi>)
  set_tests_properties(test_cuda_dist_mpi_np${np} PROPERTIES LABELS "mpi;emu" TIMEOUT 600
    ENVIRONMENT "CK_FORK=no;OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;QT_CUEMU_THREADS=1;${QT_MPI_ENV}")
endforeach()
