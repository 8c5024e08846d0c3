# cmake/dist.cmake: data-parallel training's MPI parts (qtrain/dist.h), built only where MPI is
# found. Included by the top-level CMakeLists.txt after the `qtrain` program and the tests.
#
#   qtrain_mpi      host/dist/comm_mpi.c (the MPI communicator) on libqtrain and MPI::MPI_C;
#                   linked into `qtrain` with QT_HAVE_MPI, so `mpirun -np N qtrain train`
#                   trains data-parallel on the CPU backend
#   test_dist_mpi   tests/mpi/test_dist_mpi.c under `mpirun -np 2 --oversubscribe` (label mpi)
#   test_dist_faults  tests/mpi/test_dist_faults.sh: a rank killed mid-training, Ctrl-C on the
#                   launcher (label mpi)
#   bench_dist      bench/bench_dist.c: 2 ranks x 1 thread against 1 rank x 1 thread
#
# Without MPI (no mpicc, no libmpi) none of this is built, `qtrain train` under a launcher
# says it was built without MPI, and every other target and test is unchanged.
# scripts/install_deps.sh installs Open MPI (openmpi-bin, libopenmpi-dev) on Debian/Ubuntu.

option(QT_MPI "Build the MPI communicator and the mpi tests where MPI is found" ON)
if(NOT QT_MPI)
  message(STATUS "qtrain: QT_MPI is OFF: no data-parallel training over MPI")
  return()
endif()
find_package(MPI COMPONENTS C QUIET)
if(NOT MPI_C_FOUND)
  message(STATUS "qtrain: MPI not found: no data-parallel training over MPI, no mpi tests "
                 "(apt-get install openmpi-bin libopenmpi-dev)")
  return()
endif()
find_program(QT_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})
message(STATUS "qtrain: MPI ${MPI_C_VERSION} (${MPI_C_LIB_NAMES}); launcher ${QT_MPIEXEC}")

add_library(qtrain_mpi STATIC ${CMAKE_SOURCE_DIR}/host/dist/comm_mpi.c)
target_include_directories(qtrain_mpi PRIVATE ${CMAKE_SOURCE_DIR}/host/dist)
target_link_libraries(qtrain_mpi PUBLIC libqtrain MPI::MPI_C)
set_target_properties(qtrain_mpi PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(qtrain PRIVATE qtrain_mpi)
target_compile_definitions(qtrain PRIVATE QT_HAVE_MPI)

if(NOT QT_MPIEXEC)
  message(STATUS "qtrain: no mpirun/mpiexec found: the mpi tests are not registered")
  return()
endif()

# Open MPI refuses to run as root without these; --oversubscribe lets 2 ranks share fewer cores.
set(QT_MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
set(QT_MPIRUN ${QT_MPIEXEC} -np 2 --oversubscribe --bind-to none)

# The helpers of the tests under mpirun (tests/mpi/mpi_testutil.c).
add_library(qt_mpi_testutil STATIC ${CMAKE_SOURCE_DIR}/tests/mpi/mpi_testutil.c)
target_include_directories(qt_mpi_testutil PUBLIC ${CMAKE_SOURCE_DIR}/tests/mpi
  PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(qt_mpi_testutil PUBLIC qt_testutil)

add_executable(test_dist_mpi ${CMAKE_SOURCE_DIR}/tests/mpi/test_dist_mpi.c)
target_include_directories(test_dist_mpi PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/host)
target_link_libraries(test_dist_mpi PRIVATE qt_mpi_testutil qtrain_mpi)
# CK_FORK=no: a forked Check case cannot use the parent's MPI connection.
add_test(NAME test_dist_mpi COMMAND ${QT_MPIRUN} $<TARGET_FILE:test_dist_mpi>)
set_tests_properties(test_dist_mpi PROPERTIES LABELS "mpi;unit" TIMEOUT 300
  ENVIRONMENT "CK_FORK=no;OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;QT_SOURCE_DIR=${CMAKE_SOURCE_DIR};QT_BINARY_DIR=${CMAKE_BINARY_DIR};${QT_MPI_ENV}")

add_test(NAME test_dist_faults
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mpi/test_dist_faults.sh $<TARGET_FILE:qtrain>
          ${QT_MPIEXEC} ${CMAKE_BINARY_DIR})
set_tests_properties(test_dist_faults PROPERTIES LABELS "mpi;unit" TIMEOUT 300
  ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;${QT_MPI_ENV}")

add_executable(bench_dist ${CMAKE_SOURCE_DIR}/bench/bench_dist.c)
target_include_directories(bench_dist PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/host)
target_link_libraries(bench_dist PRIVATE libqtrain qtrain_mpi)
