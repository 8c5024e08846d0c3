# cmake/deps.cmake: the CPU-side dependencies (OpenMP, OpenBLAS and its cblas.h, Check).
# Included by the top-level CMakeLists.txt before any target. Sets:
#   OpenMP::OpenMP_C        imported target (find_package(OpenMP))
#   OPENBLAS_LIB            the OpenBLAS library file (cache)
#   CBLAS_INCLUDE_DIR       the folder holding the cblas.h that goes with it (cache)
#   CHECK_INCLUDE_DIRS      Check's include folders
#   CHECK_LINK_LIBRARIES    what a Check suite links: libcheck and what it needs
#
# Where they are looked for, first match wins:
#   1. QT_DEPS_PREFIX (cache variable, default: the environment variable of that name): a prefix
#      with lib/, include/ and lib/pkgconfig/, such as the one .gpu_bundle/env.sh unpacks
#      (scripts/gpu_bundle.sh) on a machine without these packages and without apt.
#   2. Debian's OpenMP build of OpenBLAS (libopenblas-openmp-dev), then any libopenblas.
#   3. Check through pkg-config where the binary exists (check.pc), else by find_path and
#      find_library (check.h; libcheck_pic or libcheck, plus libsubunit when there, rt, m and
#      the thread library), so a machine without pkg-config builds the tests too.
set(QT_DEPS_PREFIX "$ENV{QT_DEPS_PREFIX}" CACHE PATH
  "Prefix searched first for OpenBLAS, cblas.h and Check (e.g. what .gpu_bundle/env.sh unpacks)")

find_package(OpenMP REQUIRED COMPONENTS C)

# ---- OpenBLAS ------------------------------------------------------------------------------
# Prefer the OpenMP build so its threads and ours share one pool (the pthread build
# oversubscribes the cores when called next to OpenMP regions). find_library and find_path
# keep the first hit in the cache, so each later call below only runs when nothing was found.
if(QT_DEPS_PREFIX)
  find_library(OPENBLAS_LIB NAMES openblas PATHS ${QT_DEPS_PREFIX}/lib NO_DEFAULT_PATH)
  find_path(CBLAS_INCLUDE_DIR cblas.h PATHS ${QT_DEPS_PREFIX}/include NO_DEFAULT_PATH)
endif()
find_library(OPENBLAS_LIB NAMES openblas
  PATHS /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/aarch64-linux-gnu/openblas-openmp
  NO_DEFAULT_PATH)
if(NOT OPENBLAS_LIB)
  find_library(OPENBLAS_LIB NAMES openblas REQUIRED)
endif()
find_path(CBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp
        /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas
  REQUIRED)
message(STATUS "qtrain: OpenBLAS ${OPENBLAS_LIB}, cblas.h in ${CBLAS_INCLUDE_DIR}")

# ---- Check ---------------------------------------------------------------------------------
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  if(QT_DEPS_PREFIX)
    # Ahead of the default search path, so the prefix's check.pc (and the libsubunit.pc it
    # requires) wins over a system copy.
    set(ENV{PKG_CONFIG_PATH} "${QT_DEPS_PREFIX}/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")
  endif()
  pkg_check_modules(CHECK QUIET check)
endif()
if(CHECK_FOUND)
  message(STATUS "qtrain: Check ${CHECK_VERSION} (pkg-config): ${CHECK_LINK_LIBRARIES}")
else()
  set(_qt_check_hints)
  if(QT_DEPS_PREFIX)
    set(_qt_check_hints HINTS ${QT_DEPS_PREFIX}/include ${QT_DEPS_PREFIX}/lib)
  endif()
  find_path(QT_CHECK_INCLUDE_DIR check.h ${_qt_check_hints})
  # Debian's check.pc names the position-independent static library; other builds ship
  # libcheck (static or shared).
  find_library(QT_CHECK_LIBRARY NAMES check_pic check ${_qt_check_hints})
  # Debian builds Check with subunit support, so its libcheck needs libsubunit; elsewhere it
  # may be absent, and then is not needed.
  find_library(QT_SUBUNIT_LIBRARY NAMES subunit ${_qt_check_hints})
  if(NOT QT_CHECK_INCLUDE_DIR OR NOT QT_CHECK_LIBRARY)
    message(FATAL_ERROR "qtrain: Check (check.h and libcheck) not found, and no pkg-config "
      "check.pc either; install it (apt-get install check pkg-config) or pass "
      "-DQT_DEPS_PREFIX=<prefix with include/check.h and lib/libcheck*> (scripts/gpu_bundle.sh)")
  endif()
  find_package(Threads REQUIRED)
  set(CHECK_INCLUDE_DIRS ${QT_CHECK_INCLUDE_DIR})
  set(CHECK_LINK_LIBRARIES ${QT_CHECK_LIBRARY})
  if(QT_SUBUNIT_LIBRARY)
    list(APPEND CHECK_LINK_LIBRARIES ${QT_SUBUNIT_LIBRARY})
  endif()
  list(APPEND CHECK_LINK_LIBRARIES Threads::Threads rt m)
  message(STATUS "qtrain: Check (no pkg-config): ${CHECK_LINK_LIBRARIES}, check.h in "
                 "${QT_CHECK_INCLUDE_DIR}")
endif()
