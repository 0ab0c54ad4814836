# ctest's install_consumer: the package works for a consumer, three ways.
#  1. Installs the build tree into a scratch prefix, checks that the exported target carries none
#     of the build machine's code-generation flags (-march=native in INTERFACE_COMPILE_OPTIONS
#     made consumers' binaries die with SIGILL on older CPUs), that find_package refuses a version
#     the package is not (xtapeConfigVersion.cmake), then configures, builds and runs
#     tests/install/ with find_package(xtape 0.2 CONFIG REQUIRED).
#  2. Builds tests/install/ on the source tree through add_subdirectory, as a shared library
#     (-DBUILD_SHARED_LIBS=ON), at -O0: this build of the library is what the test adds to CI's
#     time, and it only has to link and run, not be fast.
#  3. Installs that shared build and builds the consumer against it with find_package.
# With MPI (-DMPIEXEC=<mpiexec>), each case also builds consumer_mpi against xtape::distributed; the
# installed static one runs under mpiexec -np 2, the others as one process (about 1 s more in all).
# Arguments: -DBUILD_DIR=<xtape build tree> -DSOURCE_DIR=<tests/install> -DXTAPE_ROOT=<xtape source>
#            -DWORK_DIR=<scratch> [-DLAUNCHER=<compiler launcher, e.g. ccache>] [-DJOBS=N] [-DMPIEXEC=...]
if(NOT JOBS)
  set(JOBS 2)
endif()
set(launcher "")
if(LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER} -DCMAKE_C_COMPILER_LAUNCHER=${LAUNCHER})
endif()

function(run what)
  string(TIMESTAMP t0 "%s")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  string(TIMESTAMP t1 "%s")
  math(EXPR s "${t1} - ${t0}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "${what}: ${s} s")
endfunction()

# Configures, builds and runs the consumer in WORK_DIR/<name> with the extra cache arguments (and
# consumer_mpi, which the package must export when xtape was built with MPI).
function(consumer name)
  set(dir ${WORK_DIR}/${name})
  run("${name}: configure" ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${dir} ${launcher} ${ARGN})
  set(targets consumer)
  if(MPIEXEC)
    list(APPEND targets consumer_mpi)
  endif()
  run("${name}: build" ${CMAKE_COMMAND} --build ${dir} --target ${targets} -j ${JOBS})
  run("${name}: run" ${dir}/consumer ${dir}/model.h5)
  if(MPIEXEC AND name STREQUAL "installed")
    run("${name}: mpiexec -np 2 consumer_mpi" ${MPIEXEC} --allow-run-as-root --oversubscribe -np 2 ${dir}/consumer_mpi)
  elseif(MPIEXEC)
    run("${name}: consumer_mpi" ${dir}/consumer_mpi)
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})

# 1. The installed static build.
run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
foreach(f xtapeConfig.cmake xtapeConfigVersion.cmake xtapeTargets.cmake)
  if(NOT EXISTS ${WORK_DIR}/prefix/lib/cmake/xtape/${f})
    message(FATAL_ERROR "cmake --install did not install lib/cmake/xtape/${f}")
  endif()
endforeach()
if(MPIEXEC AND NOT EXISTS ${WORK_DIR}/prefix/include/xtape/distributed/mpi.hpp)
  message(FATAL_ERROR "xtape was built with MPI but cmake --install did not install include/xtape/distributed/mpi.hpp")
endif()
file(GLOB targets ${WORK_DIR}/prefix/lib/cmake/xtape/xtapeTargets*.cmake)
foreach(f ${targets})
  file(READ ${f} text)
  foreach(flag -march -mtune -fno-tree-slp-vectorize -fno-math-errno)
    string(FIND "${text}" "${flag}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${f} exports the build flag ${flag} to consumers")
    endif()
  endforeach()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/wrong_version
                -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DXTAPE_REQUIRED_VERSION=0.3
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0 OR NOT out MATCHES "version: 0\\.2\\.0")  # "version: unknown" without xtapeConfigVersion.cmake
  message(FATAL_ERROR "find_package(xtape 0.3) should refuse the installed 0.2 package:\n${out}")
endif()
consumer(installed -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)

# 2. add_subdirectory, shared.
consumer(subdirectory_shared -DXTAPE_SOURCE_DIR=${XTAPE_ROOT} -DBUILD_SHARED_LIBS=ON -DXTAPE_NATIVE=OFF
         -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O0)
file(GLOB_RECURSE so ${WORK_DIR}/subdirectory_shared/xtape/libxtape.so*)
if(NOT so)
  message(FATAL_ERROR "-DBUILD_SHARED_LIBS=ON built no libxtape.so")
endif()

# 3. That shared library installed, found by find_package.
run("install shared" ${CMAKE_COMMAND} --install ${WORK_DIR}/subdirectory_shared --prefix ${WORK_DIR}/prefix_shared)
if(NOT EXISTS ${WORK_DIR}/prefix_shared/lib/libxtape.so)
  message(FATAL_ERROR "the shared build installed no lib/libxtape.so")
endif()
consumer(installed_shared -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix_shared -DCMAKE_BUILD_TYPE=None)
