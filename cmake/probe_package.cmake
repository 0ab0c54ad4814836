# xtape_probe_package(<Package> <result-var> [COMPONENTS ...])
# Configures a one-line project that calls find_package(<Package> REQUIRED ...) in a separate
# cmake process and sets <result-var> to TRUE when that succeeds. Whatever the package's own
# config does (require a missing dependency, call message(FATAL_ERROR)), only the probe fails;
# xtape's configure prints one line and goes on. See Note [Optional packages cannot fail the
# configure] in bench/CMakeLists.txt. The result is cached per package; delete
# XTAPE_PROBE_<Package> from the cache to probe again.
function(xtape_probe_package package result)
  set(cache_var XTAPE_PROBE_${package})
  if(DEFINED ${cache_var})
    set(${result} ${${cache_var}} PARENT_SCOPE)
    return()
  endif()
  set(dir ${CMAKE_BINARY_DIR}/probe/${package})
  file(MAKE_DIRECTORY ${dir}/build)
  set(components "")
  if(ARGN)
    set(components " ${ARGN}")
  endif()
  file(WRITE ${dir}/CMakeLists.txt
    "cmake_minimum_required(VERSION 3.18)\nproject(probe LANGUAGES C CXX)\nfind_package(${package} REQUIRED${components})\n")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S ${dir} -B ${dir}/build -DCMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    set(ok TRUE)
  else()
    set(ok FALSE)
    string(REGEX MATCH "Could NOT find[^\n]*|Could not find[^\n]*" why "${err}")
    if(NOT why)
      set(why "its CMake package failed to configure (see ${dir}/build)")
    endif()
    message(STATUS "xtape: optional ${package} skipped: ${why}")
  endif()
  set(${cache_var} ${ok} CACHE INTERNAL "xtape_probe_package result for ${package}")
  set(${result} ${ok} PARENT_SCOPE)
endfunction()
